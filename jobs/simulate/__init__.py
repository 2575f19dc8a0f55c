"""The synthetic city: a labelled landing zone for tests, demos, benchmarks and `cdrwatch evaluate`.

`simulate(out, start, days, ...)` writes exactly what DESIGN.md's landing contract describes —
`cells/<carrier>.csv`, `whitelist.csv`, `<carrier>/<YYYY-MM-DD>/` files in the three raw formats
with their `_MANIFEST.csv` (`manifests=False` leaves those out) —
plus `truth/`, the labels. Deterministic for a seed, byte for byte.

What the city contains (one module each):

* `city`       8 Chengdu districts, 7x7 base-station sites each; cm/cu/ct cells per site, named and
               surveyed differently by every carrier (join by position, not id);
* `numbers`    the carriers' local segments, outside number pools, IMSIs and Luhn-valid IMEIs;
* `residents`  subscribers with home, work, activity, a social circle and a diurnal rhythm;
* `negatives`  honest look-alikes: couriers, a whitelisted telemarketing office, a stadium crowd;
* `dens`       GOIP boxes (shared or fresh IMEIs), call rooms and SMS blasters dialling the
               residents' segments in order (per SIM, round-robin or in shuffled blocks), with
               victims and call-backs; the first den moves half-way through;
* `events`     calls -> one record per modelled side, cells from where each party is;
* `dirt`       corrupt lines and repeated records in every file;
* `writers`    the cn_csv / pipe_gbk / jsonl files, their manifests and the inventories;
* `truth`      dens, their SIMs, victims, congestion, hard negatives, per-file counts, corrupt lines;
* `run`        the day loop tying it together.
"""
from jobs.simulate.run import SimSummary, simulate

__all__ = ["SimSummary", "simulate"]
