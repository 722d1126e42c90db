"""The memory governor of ``exec`` (DESIGN §11): builds that fit in memory.

``exec`` hands cargo a GNU make jobserver it controls and puts a thin rustc
wrapper in front of every compilation. The governor loop (``governor``) grants
jobserver tokens by live memory (``livemem``), admits each compilation when the
memory its crate is known to need fits (``peaks``: learned peak RSS per
workspace, profile and crate), and preempts the youngest rustc before the
kernel's OOM killer would act; the wrapper (``wrapper``, standard library only:
cargo starts it once per rustc) reruns a preempted compilation when admitted
again. ``session`` sets it all up around one build; ``decide`` is the
``governor`` decision the built-in plugins share.

Part of stage 6 (``run``): may import the base modules and the earlier stages.
The wrapper and ``crates`` import nothing outside the standard library. This
``__init__`` imports nothing.
"""
