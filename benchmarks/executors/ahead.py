"""Which run's splits a worker decodes ahead (run/inputs.prefetch) while it makes its current run: the first
queued run whose splits no run handed out so far shares. Each set of splits is asked for once, so two workers
never prefetch one task, and a worker's next run of the same task needs nothing decoded."""
import json


def splits_key(run: dict) -> str:
    """What decides a run's decoded splits: its task, data settings and image size."""
    return json.dumps([run["task"], run["data"], run["model"]["image_size"]], sort_keys=True, default=str)


class DecodeAhead:
    def __init__(self):
        self.seen = set()

    def next_for(self, job, queue) -> dict | None:
        """The run to prefetch while `job` (store.Pending) is made, from `queue` (those still to hand out)."""
        self.seen.add(splits_key(job.run))
        for later in queue:
            key = splits_key(later.run)
            if key not in self.seen:
                self.seen.add(key)
                return later.run
        return None
