"""Every fast path equals its Array API reference, over inputs that break fast paths.

One parametrized test walks the whole registry: each operation x each of its
argument layouts (1-D, 2-D, 4-D, ...) x float32/float64 x an input family
(normal values; inf/-inf/NaN; signed zeros; all zeros; ties; non-contiguous
views; read-only arrays; dense NaNs, so that windows hold several; ties mixed with
NaNs; NaN mixed with inf and -inf) x each installed library, plus the CuPy kernels' own
sources run on the host with NumPy ("cupy-host"). The fast call's results are
compared with the reference's on an identical copy of the inputs, within the
tolerance the fast path declares (exact means the same bits, signed zeros and
NaN positions included), and read-only inputs must come back unchanged.

Around it: every fast path is reachable (its ``supports`` accepts plain
inputs), every function in a fast-path module is registered, and only the
backend and the fast-path modules import an array library.
"""

from __future__ import annotations

import ast
import inspect
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet._fast import OPERATIONS, Tolerance, cupy_paths, fast_paths_disabled, fast_paths_enabled
from xpnet._fast.registry import LIBRARY_MODULES, MORE_LIBRARY_MODULES, fast_paths_for
from xpnet.backend import backend_problem

PACKAGE = Path(xpnet.__file__).parent
FAMILIES = ("normal", "nonfinite", "signed_zeros", "zeros", "ties", "noncontiguous",
            "readonly", "nans", "ties_nans", "nan_inf")
DTYPES = ("float32", "float64")


def installed_libraries() -> list[str]:
    libs = [name for name in ("numpy", "torch", "cupy", "array_api_strict")
            if backend_problem(name) is None]
    return [*libs, "cupy-host"]


def _families(library: str) -> tuple[str, ...]:
    # only NumPy arrays (and NumPy standing in for CuPy) can be read-only
    if library in ("numpy", "cupy-host"):
        return FAMILIES
    return tuple(f for f in FAMILIES if f != "readonly")


def _cases():
    for library in installed_libraries():
        for name, op in OPERATIONS.items():
            for case in op.cases:
                for dtype in DTYPES:
                    for family in _families(library):
                        yield pytest.param(name, case, dtype, family, library,
                                           id=f"{name}-{case}-{dtype}-{family}-{library}")


# ---------------------------------------------------------------------------
# Inputs of one family, on one library


def _host_values(rng, shape, dtype, family, positive):
    if family == "zeros":
        values = np.zeros(shape)
    elif family in ("ties", "ties_nans"):
        values = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        values = rng.standard_normal(shape)
        if positive:
            values = np.abs(values) + 0.1
    values = values.astype(dtype)
    flat = values.reshape(-1)
    if family == "nonfinite":
        for k, special in zip((0, 3, 7), (np.inf, -np.inf, np.nan), strict=True):
            flat[k % flat.size] = special
    elif family == "signed_zeros":
        for k, special in zip((1, 4, 5), (-0.0, 0.0, -0.0), strict=True):
            flat[k % flat.size] = special
    elif family in ("nans", "ties_nans"):
        # dense enough that pooling windows hold several NaNs (the first of which
        # is the reference's argument) and all-NaN windows occur
        flat[rng.random(flat.size) < 0.4] = np.nan
    elif family == "nan_inf":
        u = rng.random(flat.size)
        flat[u < 0.3] = np.nan
        flat[(u >= 0.3) & (u < 0.55)] = np.inf
        flat[(u >= 0.55) & (u < 0.65)] = -np.inf
    return values


def _on_library(host, library, family, role):
    if family == "noncontiguous":  # the same values as a strided view of a larger array
        wide = np.zeros((*host.shape[:-1], 2 * host.shape[-1]), dtype=host.dtype)
        wide[..., ::2] = host
    else:
        wide = host.copy()
    if library in ("numpy", "cupy-host"):
        arr = wide[..., ::2] if family == "noncontiguous" else wide
        if family == "readonly" and role == "in":
            arr.setflags(write=False)
        return arr
    be = xpnet.get_backend(library)
    dev = be.asarray(wide)
    return dev[..., ::2] if family == "noncontiguous" else dev


class Inputs:
    """``make(shape, role, positive=False)`` for an operation's case builder."""

    def __init__(self, library, dtype, family, seed):
        self.library, self.dtype, self.family = library, dtype, family
        self.rng = np.random.default_rng(seed)
        self.inputs = []  # (array, host copy) of every 'in' array

    def __call__(self, shape, role, positive=False):
        host = _host_values(self.rng, shape, self.dtype, self.family, positive)
        arr = _on_library(host, self.library, self.family, role)
        if role == "in":
            self.inputs.append((arr, host.copy()))
        return arr


def build(op, case, library, dtype, family):
    make = Inputs(library, dtype, family, seed=zlib.crc32(f"{op.name}/{case}/{family}".encode()))
    args, kwargs = op.cases[case](make)
    return args, kwargs, make


def _outputs(op, args, result):
    """What to compare: the state arrays for in-place operations, else the result."""
    if op.inplace:
        assert result is None, f"{op.name} updates in place and must return None"
        return [a for a in args if hasattr(a, "shape")]
    return list(result) if isinstance(result, tuple) else [result]


def assert_matches(fast, ref, tolerance: Tolerance, dtype: str, what: str):
    f, r = xpnet.to_numpy(fast), xpnet.to_numpy(ref)
    assert f.shape == r.shape, f"{what}: shape {f.shape} != {r.shape}"
    assert f.dtype == r.dtype, f"{what}: dtype {f.dtype} != {r.dtype}"
    f_nan, r_nan = np.isnan(f), np.isnan(r)
    if tolerance.exact:
        np.testing.assert_array_equal(f_nan, r_nan, err_msg=f"{what}: NaN positions differ")
        ints = np.dtype(f"u{f.dtype.itemsize}")
        same = (np.ascontiguousarray(f).view(ints) == np.ascontiguousarray(r).view(ints))
        bad = ~(same | f_nan)
        assert not bad.any(), (f"{what}: not bit-identical at {np.argwhere(bad)[:5].tolist()}: "
                               f"fast {f[bad][:5]}, reference {r[bad][:5]}")
        return
    finite = np.isfinite(r)
    np.testing.assert_array_equal(np.isfinite(f), finite,
                                  err_msg=f"{what}: non-finite positions differ")
    if tolerance.nonfinite == "same":
        np.testing.assert_array_equal(f[~finite], r[~finite],
                                      err_msg=f"{what}: non-finite values differ")
    if finite.any():
        rtol = tolerance.rtol_for(dtype)
        scale = float(np.max(np.abs(r[finite])))
        np.testing.assert_allclose(f[finite], r[finite], rtol=rtol, atol=rtol * scale,
                                   err_msg=what)


def _host_cupy_paths():
    def factory(name):
        return cupy_paths.HostElementwiseKernel(name, np)

    table = {}
    for path in cupy_paths.build_fast_paths(np, factory):
        table.setdefault(path.operation, []).append(path)
    return table


_HOST_CUPY = _host_cupy_paths()


# ---------------------------------------------------------------------------
# The registry test


@pytest.mark.parametrize("name, case, dtype, family, library", list(_cases()))
def test_fast_path_matches_reference(name, case, dtype, family, library):
    op = OPERATIONS[name]
    fast_args, kwargs, made = build(op, case, library, dtype, family)
    ref_args, _, _ = build(op, case, library, dtype, family)
    with np.errstate(all="ignore"):
        if library == "cupy-host":
            paths = [p for p in _HOST_CUPY.get(name, []) if p.supports(*fast_args, **kwargs)]
            path = paths[0] if paths else None
            fast_result = (path.impl if path else op.reference)(*fast_args, **kwargs)
        else:
            path = op.select(*fast_args, **kwargs)
            fast_result = op(*fast_args, **kwargs)
        with fast_paths_disabled():
            ref_result = op(*ref_args, **kwargs)
    tolerance = path.tolerance if path is not None else Tolerance(exact=True)
    fast_out, ref_out = _outputs(op, fast_args, fast_result), _outputs(op, ref_args, ref_result)
    assert len(fast_out) == len(ref_out)
    taken = f"{library} fast path" if path is not None else "reference"
    for k, (a, b) in enumerate(zip(fast_out, ref_out, strict=True)):
        assert_matches(a, b, tolerance, dtype, f"{name}[{case}] output {k} ({taken})")
    for arr, host in made.inputs:  # inputs are never modified
        np.testing.assert_array_equal(xpnet.to_numpy(arr), host,
                                      err_msg=f"{name} modified an input")


@pytest.mark.parametrize("library", [lib for lib in installed_libraries() if lib != "cupy-host"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_max_pool_windows_hand_computed(library, fast):
    """The argument of a window is its first NaN, else its first maximum (row-major
    offsets): several NaNs, NaN beside inf, ties."""
    nan, inf = np.nan, np.inf
    host = np.array([[[[1.0, nan, inf, 3.0, 2.0, 5.0],
                       [nan, 2.0, nan, inf, 5.0, 1.0]]]])
    x = xpnet.get_backend(library).asarray(host)
    op = OPERATIONS["max_pool_windows"]
    if fast:
        out, arg = op(x, 2, 2, 2, 1, 3)
    else:
        with fast_paths_disabled():
            out, arg = op(x, 2, 2, 2, 1, 3)
    np.testing.assert_array_equal(xpnet.to_numpy(out), [[[[nan, nan, 5.0]]]])
    np.testing.assert_array_equal(xpnet.to_numpy(arg), [[[[1, 2, 1]]]])


# ---------------------------------------------------------------------------
# The registry itself


def _library_paths(library):
    if library == "cupy-host":
        return {k: tuple(v) for k, v in _HOST_CUPY.items()}
    return fast_paths_for(library)


@pytest.mark.parametrize("library", [lib for lib in installed_libraries()
                                     if lib in (*LIBRARY_MODULES, "cupy-host")])
def test_every_fast_path_is_reachable(library):
    """A fast path whose supports() refuses plain inputs would go untested."""
    for name, paths in _library_paths(library).items():
        assert name in OPERATIONS, f"{library} registers a fast path for unknown {name!r}"
        op = OPERATIONS[name]
        for path in paths:
            accepted = []
            for case in op.cases:
                args, kwargs, _ = build(op, case, library, "float32", "normal")
                accepted.append(path.supports(*args, **kwargs))
            assert any(accepted), f"{library} {name}: supports() refuses every case"


def _public_functions(module_name):
    module = __import__(module_name, fromlist=["_"])
    return {n: f for n, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module_name and not n.startswith("_")}


@pytest.mark.parametrize("library", sorted(LIBRARY_MODULES))
def test_every_fast_path_function_is_registered(library):
    """Code in a fast-path module that no registry entry names is a fast path
    without an entry: a failure."""
    if library != "cupy" and backend_problem(library) is not None:
        pytest.skip(f"{library} is not installed: {backend_problem(library)}")
    module_name = LIBRARY_MODULES[library]
    helpers = {"fast_paths", "build_fast_paths", "default_threads"}
    if library == "cupy":
        registered = {p.impl.__name__ for ps in _HOST_CUPY.values() for p in ps}
        module_functions = set(_public_functions(module_name)) - helpers
        assert not module_functions, f"unregistered functions: {module_functions}"
        assert registered, "no CuPy fast path is registered"
        return
    paths = [p for ps in fast_paths_for(library).values() for p in ps]
    named = {p.impl.__name__ for p in paths} | {p.supports.__name__ for p in paths}
    for module in (module_name, *MORE_LIBRARY_MODULES.get(library, ())):
        unregistered = set(_public_functions(module)) - named - helpers
        assert not unregistered, f"{module} defines fast paths without registry " \
                                 f"entries: {sorted(unregistered)}"


def test_every_cupy_source_is_used_by_a_registered_path():
    names = set(cupy_paths.CUPY_SOURCES)
    assert {p.operation.rstrip("_") for ps in _HOST_CUPY.values() for p in ps} == names


#: Modules that may import NumPy as the host format (files, data, pictures, tests,
#: the command); the compute modules may not import any array library.
HOST_MODULES = {"files.py", "checkpoint.py", "data_utils.py", "vis_utils.py",
                "testing.py", "host.py", "_fast/numpy_paths.py", "_fast/torch_paths.py",
                "_fast/torch_conv.py",
                "_fast/cupy_paths.py"}
ARRAY_LIBRARIES = {"numpy", "torch", "cupy", "array_api_strict"}
#: The data-parallel engine is torch.distributed: its two modules hand xpnet's arrays
#: (NumPy, torch, CuPy) to it as torch tensors sharing their memory, and start ranks
#: with torch's launcher; nothing else in the package may import torch for that.
ENGINE_MODULES = {"distributed/engine.py", "distributed/launch.py"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_backend_and_fast_path_modules_import_array_libraries():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in HOST_MODULES | ENGINE_MODULES or rel.startswith(("app/", "backend/")):
            continue
        libs = _imported_roots(path) & ARRAY_LIBRARIES
        if libs:
            offenders[rel] = sorted(libs)
    assert not offenders, f"array libraries imported outside backend/ and _fast: {offenders}"
    # each backend adapter imports its own library (and NumPy, the host's) and no other
    own = {"torch_adapter.py": {"torch"}, "cupy_adapter.py": {"cupy"}}  # graphs: none
    for path in sorted((PACKAGE / "backend").glob("*.py")):
        libs = _imported_roots(path) & ARRAY_LIBRARIES
        assert libs <= {"numpy"} | own.get(path.name, set()), (path.name, libs)
    assert _imported_roots(PACKAGE / "_fast/torch_paths.py") & ARRAY_LIBRARIES == {"torch"}
    assert _imported_roots(PACKAGE / "_fast/torch_conv.py") & ARRAY_LIBRARIES == {"torch"}
    assert _imported_roots(PACKAGE / "_fast/numpy_paths.py") & ARRAY_LIBRARIES == {"numpy"}
    # cupy_paths imports CuPy only inside fast_paths(), so it loads without a GPU
    top_level = ast.parse((PACKAGE / "_fast/cupy_paths.py").read_text()).body
    for node in top_level:
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & ARRAY_LIBRARIES
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module.split(".")[0] not in ARRAY_LIBRARIES


# ---------------------------------------------------------------------------
# The switch


def test_fast_paths_disabled_runs_the_reference_in_this_thread_only():
    x = np.array([1.0, -1.0, 2.0], dtype=np.float32)
    op = OPERATIONS["relu_backward"]
    assert op.select(x, x) is not None and fast_paths_enabled()
    seen = {}
    with fast_paths_disabled():
        assert not fast_paths_enabled() and op.select(x, x) is None
        worker = threading.Thread(target=lambda: seen.update(other=fast_paths_enabled()))
        worker.start()
        worker.join()
    assert seen["other"] is True and fast_paths_enabled()


def test_info_lists_the_fast_paths_of_each_usable_backend(capsys):
    from xpnet.app.info import fast_path_lines

    lines = fast_path_lines("numpy")
    assert any("adam_" in line for line in lines)
    assert any("relu_backward" in line and "exact" in line for line in lines)
    assert "none" in fast_path_lines("array_api_strict")[0]
