"""A small Delta write run beside a larger one, in a thread of its own.

On a small driver each commit to an ops table costs a fraction of a second of driver
time; run beside a data write (an append, a MERGE) that time overlaps the write's own
Spark jobs instead of adding to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def alongside(name: str, write: Callable[..., object], /, *args, **kwargs) -> Iterator[None]:
    """Run ``write(*args, **kwargs)`` in a thread named ``name`` while the block runs.

    It is waited for on the way out, so it is done before the block is, and its error is
    raised unless the block's own error is (then it is waited for, and that one raised).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        writing = pool.submit(write, *args, **kwargs)
        try:
            yield
        except BaseException:
            writing.exception()  # waited for; the block's error is the one raised
            raise
        writing.result()
