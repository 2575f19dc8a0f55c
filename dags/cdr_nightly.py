"""cdr_nightly: each night, wait for every carrier's complete delivery, then run `jobs.pipeline.NIGHTLY` (ingest ->
validate -> feedback -> detect -> dens -> export -> report), one task per step (or, with conf schedule.one_task, one
task for the whole night: one Spark session instead of one per step). One run per local day of the conf timezone;
the callables are in jobs/orchestrate.py, the steps in jobs/pipeline.py.

The scheduler parses this file often: it reads only the conf named by env CDRWATCH_CONF (schedule,
timezone, carriers). Tasks read their conf when they run (Variable cdrwatch_conf, else that env).
"""

import datetime as dt

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, TriggerRule, chain, task

from jobs import orchestrate, pipeline
from jobs.config import load_config

config = load_config(orchestrate.conf_file_at_parse())
plan = config.schedule

with DAG(
    dag_id="cdr_nightly",
    description="carrier CDRs -> lake -> flags -> dens -> outbox/<night>/ leads",
    doc_md=__doc__,
    # a night is the local calendar day, midnight to midnight: the lake's date partitions
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=config.timezone),
    start_date=pendulum.datetime(plan.start_date.year, plan.start_date.month, plan.start_date.day, tz=config.timezone),
    catchup=plan.catchup,
    max_active_runs=1,  # a night uses the earlier nights (baselines, den ids): run them in order
    default_args={
        "retries": plan.retries,
        "retry_delay": dt.timedelta(minutes=plan.retry_delay_minutes),
        "retry_exponential_backoff": 2.0,
    },
    tags=["cdrwatch"],
):
    waits = [
        task.sensor(
            task_id=f"wait_{carrier}",
            mode="reschedule",
            poke_interval=plan.poke_interval_s,
            # the deadline itself is checked by the poke; this only stops a sensor gone astray
            timeout=(plan.landing_deadline_minutes + 24 * 60) * 60,
        )(orchestrate.task_wait_for_carrier)(carrier=carrier)
        for carrier in config.carriers
    ]
    first, *later = pipeline.NIGHTLY
    # a skipped (late) carrier does not stop the night: ingest runs unless a wait failed
    if plan.one_task:  # one process, one Spark session for the whole chain
        steps = [task(task_id="nightly", trigger_rule=TriggerRule.NONE_FAILED)(orchestrate.task_night)()]
    else:
        steps = [task(task_id=first, trigger_rule=TriggerRule.NONE_FAILED)(orchestrate.task_step)(step=first)]
        steps += [task(task_id=step)(orchestrate.task_step)(step=step) for step in later]
    chain(waits, *steps)
