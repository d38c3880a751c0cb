"""Hypothesis strategies for gradsim objects, for your own property-based tests.

Needs the ``test`` extra (``pip install "gradsim[test]"``).

Examples
--------
>>> from hypothesis import given
>>> from gradsim.strategies import net_specs
>>> @given(net_specs(max_depth=3))
... def test_roundtrip(spec):
...     assert type(spec).from_json(spec.to_json()) == spec
"""

from __future__ import annotations

from hypothesis import strategies as st

from .families import ARCHS, family
from .grids import GridSpec
from .spec import NetSpec

__all__ = ["net_specs", "grid_specs"]


@st.composite
def net_specs(draw, archs=ARCHS, max_depth=4, max_width=6, max_input_dim=3,
              batchnorm=None, activations=None):
    """Valid :class:`~gradsim.spec.NetSpec` objects with small sizes.

    Parameters
    ----------
    archs : sequence of str
        Architecture families to draw from (default all); each family's own fields
        are drawn in the ranges its module states (``FIELDS``).
    max_depth, max_width, max_input_dim : int
        Upper bounds on the sizes (lower bound 1).
    batchnorm : bool, optional
        Fix batch norm on or off; drawn when None.
    activations : sequence of str, optional
        Activations to draw from (default: all the architecture allows).
    """
    arch = draw(st.sampled_from(list(archs)))
    fam = family(arch)
    allowed = list(fam.ACTIVATIONS)
    if activations is not None:
        allowed = [a for a in allowed if a in activations] or ["relu"]
    activation = draw(st.sampled_from(allowed))
    inits = ["he", "orthogonal"] + (["looks-linear"] if activation == "crelu" else [])
    init = draw(st.sampled_from(inits))
    bn = draw(st.booleans()) if batchnorm is None else batchnorm
    small = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False)
    kwargs = dict(
        arch=arch,
        depth=draw(st.integers(1, max_depth)),
        width=draw(st.integers(1, max_width)),
        input_dim=draw(st.integers(1, max_input_dim)),
        activation=activation,
        init=init,
        weight_var=draw(st.floats(0.5, 3.0)),
        first_bias_var=draw(small),
        bias_var=draw(small),
        readout_var=draw(st.floats(0.5, 2.0)),
        batchnorm=bn,
        bn_grad=draw(st.sampled_from(["frozen", "through"])) if bn else "frozen",
    )
    if activation == "leaky":
        kwargs["slope_neg"] = draw(st.floats(-1.0, 1.0))
        kwargs["slope_pos"] = draw(st.floats(0.1, 2.0))
    if init == "looks-linear":
        kwargs["mirror"] = draw(st.floats(0.0, 1.0))
    for field, (lo, hi) in fam.FIELDS.items():  # the family's own fields, in its ranges
        kwargs[field] = draw(st.integers(lo, hi) if isinstance(lo, int) else st.floats(lo, hi))
    return NetSpec(**kwargs)


@st.composite
def grid_specs(draw, dim=1, min_points=2, max_points=12, kinds=("line", "gaussian", "ring")):
    """Valid :class:`~gradsim.grids.GridSpec` objects in ``dim`` dimensions."""
    kinds = [k for k in kinds if not (k == "ring" and dim < 2)]
    kind = draw(st.sampled_from(kinds))
    lo = draw(st.floats(-3.0, 2.0))
    hi = lo + draw(st.floats(0.5, 4.0))
    return GridSpec(kind=kind, points=draw(st.integers(min_points, max_points)), lo=lo, hi=hi,
                    dim=dim, seed=draw(st.integers(0, 2**32)),
                    radius=draw(st.floats(0.5, 3.0)))
