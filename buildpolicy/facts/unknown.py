"""The exceptions of probes, in a module of their own: probe modules import them
without the typed context and registry (and attrs), so the warm ``env`` replay
(``buildpolicy.replay``) can re-run them cheaply."""


class FactUnknown(Exception):
    """Raised inside a probe: the fact is unknown (null), and ``str(exc)`` says why."""


class NotReplayable(BaseException):
    """Raised inside a replayed probe that would start a process: give up replaying.

    A BaseException so that no probe's ``except Exception`` turns it into a null fact.
    """
