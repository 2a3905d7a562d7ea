"""What a run is doing before its first progress bar (decoding images, building the model): one line each on
stderr, so that a long silent start does not look like a hang."""
import sys

from tqdm.auto import tqdm


def status(msg: str, quiet: bool = False) -> None:
    if not quiet:
        tqdm.write(msg, file=sys.stderr)  # tqdm.write keeps an open sweep bar intact
