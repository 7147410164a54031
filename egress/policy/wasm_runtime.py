"""Run an OPA-compiled Wasm policy in process (wasmtime), one instance per worker thread.

Each decision gets a data document built for it: the calling agent's slice of
``data.egress.agents`` is parsed into a scratch area of the instance's heap, and every other part
of the data (``killed``, ``report_only``, anything else the security team keeps there) is linked
in from values parsed once when the instance was made. So a decision costs the same whether the
data holds one agent or fifty thousand, and the instance's memory holds only the shared part.

The scratch area is reset before each decision (``opa_heap_ptr_set``), as OPA's own SDKs do. The
ABI used is OPA's Wasm ABI 1.2+ (``opa_eval``, ``opa_value_add_path``). Policies that need a
builtin the Wasm module does not carry (the ``builtins`` export) are refused at load: this engine
implements no host builtins, and an unknown builtin must never be a silent deny or allow.

wasmtime calls go through ctypes, which releases the GIL while Wasm runs: a worker thread's
evaluation does not hold up the event loop.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import orjson
import wasmtime

from egress.errors import ConfigError
from egress.policy.wasm_compile import ENTRYPOINT

_ENGINE = wasmtime.Engine()
_I32 = wasmtime.ValType.i32()


class WasmError(Exception):
    """The Wasm instance failed (trap, abort, bad JSON): the decision fails closed."""


def compile_module(wasm: bytes) -> wasmtime.Module:
    """Compile (to native code) once; instances in every thread share the result."""
    try:
        return wasmtime.Module(_ENGINE, wasm)
    except wasmtime.WasmtimeError as e:
        raise ConfigError(f"policy Wasm does not load: {e}", "policy_invalid") from e


class WasmInstance:
    """One instantiated policy with the shared data parsed in; not thread-safe (one per thread).

    ``parts`` are (path, JSON value) pairs linked into every decision's data; ``skeleton`` is a
    function of the agent slice's JSON that gives the per-decision document they are linked into.
    """

    def __init__(self, module: wasmtime.Module, parts: Sequence[tuple[tuple[str, ...], bytes]]):
        self._store = wasmtime.Store(_ENGINE)
        self._memory = wasmtime.Memory(self._store, wasmtime.MemoryType(_limits(module)))
        self._exports = wasmtime.Instance(self._store, module, self._imports(module)).exports(
            self._store
        )
        needs = orjson.loads(self._dump(self._call("builtins")))
        if needs:
            names = ", ".join(sorted(needs))
            raise ConfigError(
                f"policy needs builtins the embedded engine does not provide ({names}); "
                "use the OPA server (--opa-url)",
                "policy_invalid",
            )
        entrypoints = orjson.loads(self._dump(self._call("entrypoints")))
        self._entrypoint = int(entrypoints[ENTRYPOINT])
        self._parts = [
            (self._parse(orjson.dumps(list(path))), self._parse(value)) for path, value in parts
        ]
        self._base = int(self._call("opa_heap_ptr_get"))

    def evaluate(self, data_doc: bytes, policy_input: bytes) -> Any:
        """The entrypoint's value for this input, with ``data_doc`` plus the linked parts.

        Four calls into Wasm (each costs more in wasmtime's Python wrapper than in Wasm): the
        input and the data document are copied straight to the scratch area at ``base`` (as
        OPA's SDKs do), the heap pointer is set past them, the data parsed, then evaluated."""
        size = len(policy_input) + len(data_doc)
        self._reserve(self._base + size)
        address = ctypes.addressof(self._memory.data_ptr(self._store).contents) + self._base
        ctypes.memmove(address, policy_input, len(policy_input))
        ctypes.memmove(address + len(policy_input), data_doc, len(data_doc))
        self._call("opa_heap_ptr_set", self._base + size)
        data = self._call("opa_json_parse", self._base + len(policy_input), len(data_doc))
        if data == 0:
            raise WasmError("OPA could not parse the data document")
        for path, value in self._parts:
            if self._call("opa_value_add_path", data, path, value) != 0:
                raise WasmError("cannot link shared data")
        heap = self._call("opa_heap_ptr_get")
        entry = self._entrypoint
        out = self._call("opa_eval", 0, entry, data, self._base, len(policy_input), heap, 0)
        results = orjson.loads(self._string(out))
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            return None  # undefined: no result
        return results[0].get("result")

    def _reserve(self, end: int) -> None:
        """Grow the memory so ``[0, end)`` plus a margin for the parse is addressable."""
        have = self._memory.data_len(self._store)
        want = end + 64 * 1024
        if want > have:
            pages = (want - have + 65535) // 65536
            self._memory.grow(self._store, pages)

    @property
    def memory_bytes(self) -> int:
        return int(self._memory.data_len(self._store))

    # -- the ABI ------------------------------------------------------------------------------

    def _call(self, name: str, *args: int) -> int:
        try:
            out = self._exports[name](self._store, *args)  # type: ignore[operator]
        except wasmtime.Trap as e:
            raise WasmError(f"policy trapped in {name}: {str(e).splitlines()[0]}") from e
        except wasmtime.WasmtimeError as e:
            raise WasmError(f"policy failed in {name}: {str(e).splitlines()[0]}") from e
        return int(out) if out is not None else 0

    def _write(self, raw: bytes) -> int:
        at = self._call("opa_malloc", len(raw))
        self._memory.write(self._store, raw, at)
        return at

    def _parse(self, raw: bytes) -> int:
        value = self._call("opa_json_parse", self._write(raw), len(raw))
        if value == 0:
            raise WasmError("OPA could not parse a JSON value")
        return value

    def _string(self, address: int) -> bytes:
        if address <= 0 or address >= self._memory.data_len(self._store):
            raise WasmError("result address out of bounds")
        base = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        return ctypes.string_at(base + address)

    def _dump(self, value: int) -> bytes:
        return self._string(self._call("opa_json_dump", value))

    def _imports(self, module: wasmtime.Module) -> list[wasmtime.Func | wasmtime.Memory]:
        out: list[wasmtime.Func | wasmtime.Memory] = []
        for imp in module.imports:
            if imp.name == "memory":
                out.append(self._memory)
            elif imp.name == "opa_abort":
                out.append(wasmtime.Func(self._store, wasmtime.FuncType([_I32], []), self._abort))
            elif imp.name == "opa_println":
                out.append(wasmtime.Func(self._store, wasmtime.FuncType([_I32], []), _ignore))
            elif imp.name and imp.name.startswith("opa_builtin"):
                arity = int(imp.name.removeprefix("opa_builtin")) + 2
                ftype = wasmtime.FuncType([_I32] * arity, [_I32])
                out.append(wasmtime.Func(self._store, ftype, _no_builtin))
            else:
                raise ConfigError(f"policy Wasm imports {imp.name!r}", "policy_invalid")
        return out

    def _abort(self, address: int) -> None:
        try:
            text = self._string(address).decode(errors="replace")[:200]
        except WasmError:
            text = "?"
        raise WasmError(f"policy aborted: {text}")


def _limits(module: wasmtime.Module) -> wasmtime.Limits:
    for imp in module.imports:
        if imp.name == "memory" and isinstance(imp.type, wasmtime.MemoryType):
            return wasmtime.Limits(imp.type.limits.min, None)
    return wasmtime.Limits(2, None)


def _ignore(_address: int) -> None:
    return None


def _no_builtin(*_args: int) -> int:
    raise WasmError("policy called a builtin the embedded engine does not provide")
