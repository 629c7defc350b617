"""Stand-in for PyAV on the H100 bench machine only (PyAV's ~100 MB does not fit the transfers).

The gateway decodes WAV with libsndfile and reaches PyAV only for other containers, which the
bench never sends. Put on PYTHONPATH by bench/gpu/remote_run.sh only where `import av` fails;
anything that does reach it gets a clear error instead of a silent wrong answer.
"""


class FFmpegError(Exception):
    """Matches the name the gateway catches."""


def open(*_args: object, **_kwargs: object) -> None:  # noqa: A001 - mirrors av.open
    raise FFmpegError("PyAV is not installed on this bench machine (WAV input only)")


class AudioResampler:
    def __init__(self, *_args: object, **_kwargs: object) -> None:
        raise FFmpegError("PyAV is not installed on this bench machine (WAV input only)")
