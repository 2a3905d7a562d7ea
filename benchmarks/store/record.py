"""What a result record must hold to be stored, and to be trusted when read back: every record its key
fields and config; an 'ok' record what the report needs to place it (accuracy, cost), with values that can be
(an accuracy is a percentage, a cost a finite number >= 0); a 'failed' one its reason. Other fields are kept as
they are. Checked on every write and every read, so a record the report reads cannot fail it with a KeyError
or put an impossible number in it (JSON readers take NaN and Infinity)."""
import math

from ..schema import ConfigError, Option, at_least, check_value


class InvalidRecord(ValueError):
    """A file or result that is not a valid record; the message names it and what is wrong."""


def _params_ok(params: dict):
    if not all(isinstance(params.get(k), int) and not isinstance(params.get(k), bool) for k in ("trainable", "head")):
        return "must hold the integer counts 'trainable' and 'head'"
    return None


NUMBER = (int, float)


def _percent(v):
    return None if math.isfinite(v) and 0 <= v <= 100 else "must be a percentage in [0, 100]"


def _cost(v):
    return None if math.isfinite(v) and v >= 0 else "must be a finite number >= 0"


TIMING_NUMBERS = ("total_seconds", "wall_start", "wall_end")


def _timing_ok(timing: dict):
    if not all(isinstance(timing.get(k), NUMBER) and not isinstance(timing.get(k), bool) for k in TIMING_NUMBERS):
        return f"must hold the numbers {', '.join(TIMING_NUMBERS)} (and the seconds of each phase)"
    return None


FIELDS = {
    "status": Option(str, required=True, choices=("ok", "failed")),
    "config": Option(dict, required=True, help="the resolved run config"),
    "task": Option(str, required=True),
    "method": Option(str, required=True, help="the method variant"),
    "seed": Option(int, required=True),
}
OK_FIELDS = {
    "accuracy": Option(NUMBER, required=True, check=_percent),
    # None unless the run measured the merged form
    "accuracy_static_merge": Option(NUMBER, check=_percent),
    "accuracy_calibrated_merge": Option(NUMBER, check=_percent),
    "accuracy_of": Option(str, required=True, help="which split and epoch the accuracy is of"),
    "params": Option(dict, required=True, check=_params_ok),
    "num_eval": Option(int, check=at_least(1), help="the test images, for the binomial noise of one accuracy"),
    "gmacs_per_image": Option(NUMBER, required=True, check=_cost),
    "train_img_per_s": Option(NUMBER, required=True, check=_cost),
    # optional: records made before it was added have none
    "timing": Option(dict, check=_timing_ok, help="seconds per phase of the run, its wall start/end, pid and GPU "
                                                  "(run/timing.py)"),
}
FAILED_FIELDS = {
    "error": Option(str, required=True, help="why the run failed"),
    # optional: failures recorded before it was added have none
    "timing": Option(dict, check=_timing_ok, help="when and where the failed run ran: its wall start/end, pid, "
                                                  "host and device, no phases (run/timing.failed_run_timing)"),
}


def check_record(record, where: str) -> dict:
    """`record` itself when it is a valid record; raises InvalidRecord naming `where` otherwise."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"{where}: a result record is a JSON object, got {type(record).__name__}")
    try:
        for key, option in FIELDS.items():
            check_value(key, record.get(key), option)
        for key, option in (OK_FIELDS if record["status"] == "ok" else FAILED_FIELDS).items():
            check_value(key, record.get(key), option)
    except ConfigError as e:
        raise InvalidRecord(f"{where}: {e}") from None
    return record
