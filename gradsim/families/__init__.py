"""Architecture families: each one module holding everything the family means.

================  ===========================================================
family            module
================  ===========================================================
feedforward       :mod:`gradsim.families.feedforward`
resnet            :mod:`gradsim.families.resnet` (pre-activation blocks)
highway           :mod:`gradsim.families.highway`
post-resnet       :mod:`gradsim.families.post_resnet` (activation after the sum)
================  ===========================================================

A family module defines, side by side (the names of :data:`PROTOCOL`):

* ``NAME``, ``SUMMARY``; ``FIELDS``, the NetSpec fields only it reads, with the ranges
  the hypothesis strategies draw; ``ACTIVATIONS``, those it allows;
* ``check(spec)``: its own validation (``ValueError``), called by :class:`NetSpec`;
* ``activation_sites(spec)`` and ``parameter_count(spec)``: for recording activity and
  for the memory estimate;
* ``build(spec, draw) -> (layers, bounds, readout, readout_half)``: its layers, drawn with
  a :class:`~gradsim.families.sampling.Sampler`; ``readout(spec, draw)``, also drawn for
  depth taps; optionally ``fused(net)``, a whole-network fast path (or None);
* its theory: ``covers(spec, model)`` (None, or why ``model`` of
  :data:`~gradsim.families.hooks.MODELS` does not apply), ``paper_blocks(spec,
  moments)`` for the paper model and ``kernel_plan(spec, rule)`` for the exact theory and
  gradient independence (:mod:`gradsim.families.hooks`).

Shared pieces: :mod:`.layers` (dense, batch norm, activation, residual),
:mod:`.sampling` (the parameter draws), :mod:`.activation` (the activation table) and
:mod:`.hooks` (what a family hands to the theories).  ``docs/architecture.md`` has the
recipe for adding a family.
"""

from __future__ import annotations

from . import feedforward, highway, post_resnet, resnet

__all__ = ["FAMILIES", "ARCHS", "PROTOCOL", "family", "owned_fields"]

#: Family name (``NetSpec.arch``) -> module, in the order the command line lists them.
FAMILIES = {m.NAME: m for m in (feedforward, resnet, highway, post_resnet)}
ARCHS = tuple(FAMILIES)
#: What every family module defines (``fused`` is optional).
PROTOCOL = ("NAME", "SUMMARY", "FIELDS", "ACTIVATIONS", "check", "activation_sites",
            "parameter_count", "build", "readout", "covers", "paper_blocks", "kernel_plan")


def family(arch):
    """The family module called ``arch`` (a ValueError listing the families if unknown)."""
    if arch not in FAMILIES:
        raise ValueError(f"arch must be one of {', '.join(FAMILIES)}; got {arch!r}")
    return FAMILIES[arch]


def owned_fields():
    """NetSpec field -> the families that read it (fields some family owns)."""
    out = {}
    for name, mod in FAMILIES.items():
        for field in mod.FIELDS:
            out.setdefault(field, []).append(name)
    return out
