"""The one error tree of FundTrail.

::

    FundTrailError
     ├── InputError (ValueError)              bad input from a user, a file or a node: exit code 2
     │    ├── ParseError                      a file or record that cannot be parsed (names file, line/offset)
     │    │    └── InputLimitError             a file past a safety bound (size, blank lines, YAML aliases)
     │    ├── UnknownChainError               a chain name FundTrail does not know
     │    ├── InvalidAddressError             an address that is not valid for the chain
     │    ├── BlockValidationError            merkle root mismatch, bad framing, bad magic
     │    ├── ChainConflictError              a block that conflicts with the stored chain
     │    ├── InvalidTransitionError          a state-machine transition that is not allowed
     │    └── PolicyViolationError            an export or action forbidden by an agreement clause
     ├── MissingExtraError (ImportError)   an optional part not installed; names the extra: exit 2
     ├── SourceUnavailableError (ConnectionError)   an RPC node or server that cannot be reached: exit 2
     ├── NotFoundError (LookupError)          a case, evidence item, tx ... that does not exist: exit 2
     ├── PermissionDeniedError (PermissionError)    a role or jurisdiction that may not do this: exit 2
     ├── ConflictError                        a concurrent update lost the race (optimistic locking)
     │    └── StoreBusyError                  the chain store is held by another process: exit 2
     └── IntegrityError                       tampered evidence or audit log: exit code 1

Each error formats its own message from domain arguments. Map to exit codes with :func:`exit_code`.
"""

from __future__ import annotations


class FundTrailError(Exception):
    """Base of every error FundTrail raises on purpose."""

    exit_code = 2


class InputError(FundTrailError, ValueError):
    """Bad input: a file, a record, an argument or a node answer that cannot be used."""


class ParseError(InputError):
    """A file or record that cannot be parsed; names where."""

    def __init__(self, source: str, where: str | None, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        location = f"{source}:{where}" if where else source
        super().__init__(f"{location}: {problem}")


class InputLimitError(ParseError):
    """A file that goes past a bound FundTrail reads input under (see :mod:`fundtrail.limits`)."""

    def __init__(self, source: str, where: str | None, problem: str, setting: str) -> None:
        self.setting = setting
        super().__init__(source, where, f"{problem} (the bound is set by {setting})")


class UnknownChainError(InputError):
    """A chain name that FundTrail does not know."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown chain {name!r}; known chains: {', '.join(known)}")


class InvalidAddressError(InputError):
    """An address that is not valid on the chain it was given for."""

    def __init__(self, address: str, chain: str, reason: str = "") -> None:
        self.address = address
        self.chain = chain
        detail = f": {reason}" if reason else ""
        super().__init__(f"{address!r} is not a valid {chain} address{detail}")


class BlockValidationError(InputError):
    """A block that fails validation (framing, magic, merkle root)."""

    def __init__(self, source: str, block: str, problem: str) -> None:
        self.source = source
        self.block = block
        self.problem = problem
        super().__init__(f"{source}: block {block}: {problem}")


class ChainConflictError(InputError):
    """A block that conflicts with the chain already stored."""

    def __init__(self, chain: str, height: int, stored_hash: str, new_hash: str) -> None:
        self.chain = chain
        self.height = height
        super().__init__(
            f"{chain} block {new_hash} at height {height} conflicts with stored block {stored_hash}"
        )


class InvalidTransitionError(InputError):
    """A state-machine transition that is not allowed."""


class PolicyViolationError(InputError):
    """An action that a rule (an agreement clause, a marking) forbids; names the rule."""

    def __init__(self, rule: str, problem: str) -> None:
        self.rule = rule
        super().__init__(f"{problem} (forbidden by {rule})")


class MissingExtraError(FundTrailError, ImportError):
    """An optional dependency that is not installed; says which extra of the package brings it."""

    def __init__(self, module: str, extra: str, needed_for: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(f"{needed_for} needs the {extra!r} extra ({module} is not installed): "
                         f"pip install 'fundtrail[{extra}]'")


class SourceUnavailableError(FundTrailError, ConnectionError):
    """A node or server that cannot be reached or answers with an error."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"{url}: {problem}")


class NotFoundError(FundTrailError, LookupError):
    """Something asked for by name or id that does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class PermissionDeniedError(FundTrailError, PermissionError):
    """A user whose role or jurisdiction does not allow the action."""


class ConflictError(FundTrailError):
    """A concurrent update that would overwrite another one (optimistic locking)."""


class StoreBusyError(ConflictError):
    """The chain store is held by another process (DuckDB allows one writer and no reader beside it)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        super().__init__(
            f"the chain store {path} is in use by another process ({holder}), for example `fundtrail serve` "
            "or an ingest: wait for it to finish, or ask the running server (API) instead"
        )


class IntegrityError(FundTrailError):
    """Evidence or an audit log whose hashes or signatures no longer match."""

    exit_code = 1


def exit_code(error: BaseException) -> int:
    """The CLI exit code for an error: 2 for bad input, 1 for integrity failures."""
    if isinstance(error, FundTrailError):
        return error.exit_code
    return 1
