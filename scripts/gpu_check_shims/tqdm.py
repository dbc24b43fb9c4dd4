"""A stand-in for tqdm on a device machine that lacks it (scripts/gpu_check.py): progress bars
only, so it iterates and draws nothing. Never on sys.path unless tqdm is missing."""


class tqdm:  # noqa: N801  (tqdm's own name)
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable or ())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    @staticmethod
    def write(text, file=None, **kwargs):
        import sys

        print(text, file=file or sys.stdout)

    def close(self):
        pass
