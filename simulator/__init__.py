"""The synthetic city: a labelled landing zone for tests, demos, benchmarks and `cdrwatch evaluate`.

`simulate(out, start, days, ...)` writes exactly what the landing contract (docs/contracts.md) describes —
`cells/<carrier>.csv`, `whitelist.csv`, `<carrier>/<YYYY-MM-DD>/` files in the three raw formats
with their `_MANIFEST.csv` (`manifests=False` leaves those out) —
plus `truth/`, the labels. Deterministic for a seed, byte for byte.

What the city contains (one module each):

* `city`       8 Chengdu districts, 7x7 base-station sites each; cm/cu/ct cells per site, named and
               surveyed differently by every carrier (join by position, not id);
* `numbers`    the carriers' local segments, outside number pools, IMSIs and Luhn-valid IMEIs;
* `residents`  subscribers with home, work, activity, a social circle and a diurnal rhythm;
* `negatives`  honest look-alikes: couriers, a whitelisted telemarketing office, a stadium crowd,
               and in every scenario an unregistered debt-collection call centre (a room of phones
               calling the same debtors day after day, long talks, call-backs), 3-5 estate agents
               cold-calling one segment in order at a person's pace while on the move, and a phone
               shop whose 10-30 new SIMs a day make test calls in the shop, then leave with their
               buyers (all in truth/hard_negatives.csv);
* `dens`       `--dens N` cycles through eight kinds: GOIP boxes (shared or fresh IMEIs), call rooms
               and SMS blasters dialling the residents' segments in order (per SIM, round-robin or
               in shuffled blocks); then the evasive ones: a box showing a new IMEI on every call,
               a low-and-slow room of phones with SIMs bought from residents calling a leaked list
               of residents from the third day, two boxes in one room sharing one list, a box in a
               car changing mast every hour along a road. All with victims and call-backs; the
               first den moves half-way through. `--dens 4` is exactly the four classic dens;
* `events`     calls -> one record per modelled side, cells from where each party is (and the
               device of the call, when a box changes it);
* `spoofing`   (`spoofers=K`) overseas caller-ID spoofing gateways (改号): incoming legs only, showing
               residents' mobile numbers or protected ones (110, 12345, banks' 95xxx), in sessions that
               sweep one or two segments (one late session past midnight); banks and hotlines themselves
               ring from landlines (`numbers.ring_from_landline`), so a protected number calling is spoofed;
* `dirt`       corrupt lines and repeated records in every file;
* `writers`    the cn_csv / pipe_gbk / jsonl files, their manifests and the inventories; with
               `clock_skew=S` each carrier's switch clock is off (cm 0, cu +0.75 S, ct -S) in every
               time it writes, records stamped across midnight staying in the day's files;
* `raids`      (`raid_after=N`) the first box den raided after its N-th day, back two days later with the
               same box, fresh SIMs, at another site; (`lawful_gateways=K`, in `negatives`) parcel-locker
               SMS gateways that look like GOIP boxes and are lawful;
* `truth`      dens (a moving den with its route), their SIMs, victims, congestion, hard negatives,
               per-file counts, corrupt lines, raids, lawful businesses, spoofed legs;
* `run`        the day loop tying it together;
* `field`      `write_field_feedback`: the field units' answers to a night's leads, from the truth.
"""

from simulator.field import write_field_feedback
from simulator.run import SimSummary, simulate

__all__ = ["SimSummary", "simulate", "write_field_feedback"]
