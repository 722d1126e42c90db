"""``FactUnknown``, in a module of its own: probe modules import it without the
typed context and registry (and attrs), so the warm ``env`` replay can re-run them
cheaply (``buildpolicy.memo``)."""


class FactUnknown(Exception):
    """Raised inside a probe: the fact is unknown (null), and ``str(exc)`` says why."""
