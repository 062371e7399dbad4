"""Blocks from a Bitcoin Core-style JSON-RPC node (Bitcoin, Litecoin, Bitcoin Cash, Dogecoin, Zcash ...).

The source asks for ``getblockhash`` and ``getblock`` in JSON-RPC batches, one HTTP round trip per
``batch_blocks`` blocks. It prefers verbosity 3 (inputs carry the spent output, Bitcoin Core 25+),
then 2 (decoded transactions), then 1 with one ``getrawtransaction`` per transaction (nodes that
only take a boolean, such as old Dogecoin). Amounts arrive in coins and are read as exact decimals.

Addresses and script types come from the output script bytes (``scriptPubKey.hex``) through
:func:`fundtrail.domain.scripts.classify_script`, never from the node's own rendering, so every
reader derives the same address from the same script.

Litecoin's MWEB (active on regtest from height 432): the extension-block data (``mweb`` in the block,
``ismweb`` outputs) is confidential and left out; what stays visible on the canonical chain is kept:
peg-in outputs (witness version 9) and the integrating "HogEx" transaction at the end of each block,
which spends the previous HogEx output and the block's peg-ins and pays peg-outs and the next HogEx
output (witness version 8).

Zcash and other shielded pools: only the transparent part is stored. A transaction's fee counts the
value that crosses the pool boundary (``valueBalance``, ``vjoinsplit``) when the reader knows every
input value.
"""

from __future__ import annotations

import decimal
import itertools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpx

from fundtrail.domain.chains import ChainParams, get_chain
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.domain.scripts import classify_script
from fundtrail.domain.sources import BlockSource
from fundtrail.errors import InputError, SourceUnavailableError

log = logging.getLogger(__name__)

ENV_USER = "FUNDTRAIL_RPC_USER"
ENV_PASSWORD = "FUNDTRAIL_RPC_PASSWORD"
ENV_COOKIE = "FUNDTRAIL_RPC_COOKIE"

# Genesis block hashes of the networks whose nodes this source reads; a node whose block 0 differs
# is another chain (a Bitcoin regtest node asked for Litecoin regtest, say).
GENESIS: dict[str, str] = {
    "btc": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "btc-testnet": "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    "btc-regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    "ltc": "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
    "ltc-testnet": "4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0",
    "ltc-regtest": "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9",
    "bch": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "doge": "1a91e3dace36e2be3bf030a65679fe821aa1d6ef92e7c9902eb318182c355691",
    "zec": "00040fe8ec8471911baa1db1266ea15dd06b4a8a5c453883c000b031973dce08",
}

# JSON-RPC error codes of Bitcoin Core that mean "this block or transaction does not exist"
# (as opposed to "this node does not take that verbosity").
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601

# getblock verbosity levels, most informative first; level 1 is sent as ``true`` for old nodes.
VERBOSITY_LEVELS = (3, 2, 1)

MAX_RETRIES_ON_CHANGE = 3

# About this much getblock JSON per request: large blocks are fetched a few at a time.
GROUP_BYTES = 32 * 1024 * 1024

MWEB_NOTE = ("MWEB extension blocks are confidential and not stored; their peg-ins, peg-outs and HogEx "
             "transactions are")
SHIELDED_NOTE = "shielded-pool transfers are not stored; only the transparent inputs and outputs are"


def node_network(chain: str) -> str:
    """The ``chain`` field of ``getblockchaininfo`` that a FundTrail chain name expects."""
    name = get_chain(chain).name
    for suffix, network in (("-regtest", "regtest"), ("-testnet", "test"), ("-signet", "signet")):
        if name.endswith(suffix):
            return network
    return "main"


@dataclass(slots=True)
class RpcFailure:
    """A JSON-RPC error answer to one call."""

    code: int
    message: str


@dataclass(slots=True)
class _Tx:
    """One transaction while a chunk of blocks is assembled (inputs may still be resolved)."""

    txid: str
    height: int
    time: int
    index: int
    coinbase: bool
    size: int | None
    vsize: int | None
    version: int | None
    locktime: int | None
    segwit: bool
    node_fee: int | None
    shielded_net: int
    outputs: list[tuple[int, str | None, int, str]] = field(default_factory=list)
    # [n, prev_txid, prev_n, sequence, address, value]
    inputs: list[list[Any]] = field(default_factory=list)


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without credentials (safe to show) and the credentials it held, if any."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"bad RPC URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("bad RPC URL: it must look like http://HOST:PORT")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port is not None else "")
    clean = SplitResult(parts.scheme, netloc, parts.path, parts.query, "").geturl()
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return clean, auth


def _credentials_from_env(shown_url: str) -> tuple[str, str] | None:
    user = os.environ.get(ENV_USER)
    if user:
        return user, os.environ.get(ENV_PASSWORD, "")
    cookie = os.environ.get(ENV_COOKIE)
    if cookie:
        try:
            text = Path(cookie).read_text().strip()
        except OSError as exc:
            raise SourceUnavailableError(shown_url, f"cannot read the cookie file {cookie}: "
                                                    f"{exc.strerror or exc}") from None
        user, sep, password = text.partition(":")
        if not sep:
            raise SourceUnavailableError(shown_url, f"the cookie file {cookie} is not USER:PASSWORD")
        return user, password
    return None


def to_base_units(value: Any, decimals: int, what: str) -> int:
    """Coins (a JSON number read as Decimal, or an int) as an exact integer of base units."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InputError(f"{what}: amount {value!r} is not a number")
    scaled = Decimal(value).scaleb(decimals)
    integral = scaled.to_integral_value()
    if scaled != integral:
        raise InputError(f"{what}: amount {value} has more than {decimals} decimal places")
    return int(integral)


class BitcoinRpcSource(BlockSource):
    """Blocks of a UTXO chain from a Bitcoin Core-style node, in JSON-RPC batches.

    Credentials: ``user:password@`` in the URL, else ``$FUNDTRAIL_RPC_USER`` /
    ``$FUNDTRAIL_RPC_PASSWORD``, else the node's cookie file named by ``$FUNDTRAIL_RPC_COOKIE``.
    Nothing is sent before the first call; the first call checks the node's network (and its
    genesis block) against ``chain``. Inputs are filled from the outputs of the blocks read in the
    same batch; the store fills the others from the outputs it holds. With ``enrich_inputs`` they are
    filled from ``getrawtransaction`` instead (the node needs ``-txindex``): for ranges that start
    after the chain's first block, whose earlier outputs the store does not hold.
    """

    def __init__(self, url: str, chain: str, *, batch_blocks: int = 50, timeout: float = 30,
                 enrich_inputs: bool = False, client: httpx.Client | None = None) -> None:
        self.params: ChainParams = get_chain(chain)
        if not self.params.is_utxo:
            raise InputError(f"chain {chain!r} is not a UTXO chain; use the Ethereum RPC source")
        self.chain = self.params.name
        self.url, self._auth = _split_credentials(url)
        self.shown_url = self.url
        self.batch_blocks = max(1, int(batch_blocks))
        self.timeout = timeout
        self.enrich_inputs = enrich_inputs
        self._client = client
        self._owns_client = client is None
        self._ids = itertools.count(1)
        self._checked = False
        self._verbosity: int | None = None
        self._notes: set[str] = set()
        self._last_response_bytes = 0
        self._bytes_per_block: float | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        """What the blocks read so far held that the store does not keep (for the ingest report)."""
        return tuple(sorted(self._notes))

    # ------------------------------------------------------------------ transport

    def _http(self) -> httpx.Client:
        if self._client is None:
            auth = self._auth or _credentials_from_env(self.shown_url)
            self._client = httpx.Client(timeout=self.timeout, auth=auth,
                                        headers={"Content-Type": "application/json"})
        return self._client

    def close(self) -> None:
        """Close the HTTP connection pool (when this source opened it)."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def __enter__(self) -> BitcoinRpcSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        try:
            response = self._http().post(self.url, content=body)
        except httpx.TimeoutException:
            raise SourceUnavailableError(self.shown_url, f"no answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise SourceUnavailableError(self.shown_url, f"cannot connect ({_reason(exc)})") from None
        self._last_response_bytes = len(response.content)
        if response.status_code in (401, 403):
            raise SourceUnavailableError(
                self.shown_url, f"HTTP {response.status_code}: the node refused the RPC credentials "
                                f"(give user:password in the URL, ${ENV_USER}/${ENV_PASSWORD} or "
                                f"${ENV_COOKIE})")
        try:
            document = json.loads(response.content, parse_float=decimal.Decimal)
        except ValueError:
            if response.status_code != 200:
                raise SourceUnavailableError(
                    self.shown_url, f"HTTP {response.status_code} {response.reason_phrase}") from None
            raise SourceUnavailableError(self.shown_url, "the answer is not JSON") from None
        return document

    def call_many(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """One batch request; each answer is the result or an :class:`RpcFailure`."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [{"jsonrpc": "1.0", "id": i, "method": m, "params": p}
                   for i, (m, p) in zip(ids, calls, strict=True)]
        document = self._post(payload)
        if isinstance(document, dict):  # some nodes answer a whole batch with one error
            error = document.get("error") or {"code": -1, "message": "batch request refused"}
            return [RpcFailure(int(error.get("code", -1)), str(error.get("message")))] * len(calls)
        if not isinstance(document, list):
            raise SourceUnavailableError(self.shown_url, "the answer to a batch request is not a list")
        by_id = {}
        for item in document:
            if isinstance(item, dict):
                by_id[item.get("id")] = item
        out: list[Any] = []
        for i, (method, _params) in zip(ids, calls, strict=True):
            item = by_id.get(i)
            if item is None:
                raise SourceUnavailableError(self.shown_url, f"no answer to {method} in a batch")
            error = item.get("error")
            if error:
                out.append(RpcFailure(int(error.get("code", -1)), str(error.get("message", ""))))
            else:
                out.append(item.get("result"))
        return out

    def call(self, method: str, *params: Any) -> Any:
        """One call; a JSON-RPC error is a SourceUnavailableError naming the method."""
        (answer,) = self.call_many([(method, list(params))])
        if isinstance(answer, RpcFailure):
            raise self._failure(method, answer)
        return answer

    def _failure(self, method: str, failure: RpcFailure, hint: str = "") -> SourceUnavailableError:
        return SourceUnavailableError(self.shown_url, f"{method}: node error {failure.code}: "
                                                      f"{failure.message}{hint}")

    # ------------------------------------------------------------------ network check

    def check_network(self) -> None:
        """Raise InputError when the node serves another network or chain than ``self.chain``."""
        if self._checked:
            return
        info, genesis = self.call_many([("getblockchaininfo", []), ("getblockhash", [0])])
        expected = node_network(self.chain)
        if isinstance(info, RpcFailure):
            if info.code != RPC_METHOD_NOT_FOUND:
                raise self._failure("getblockchaininfo", info)
            log.warning("%s: the node has no getblockchaininfo; network not checked", self.shown_url)
        else:
            network = info.get("chain") if isinstance(info, dict) else None
            if network != expected:
                raise InputError(f"{self.shown_url}: the node is on network {network!r} but chain "
                                 f"{self.chain} needs a node on {expected!r}")
        known = GENESIS.get(self.chain)
        if isinstance(genesis, RpcFailure):
            raise self._failure("getblockhash", genesis)
        if known is not None and genesis != known:
            raise InputError(f"{self.shown_url}: the node's genesis block {genesis} is not the genesis "
                             f"block of {self.chain} ({known}): the node serves another chain")
        self._checked = True

    # ------------------------------------------------------------------ BlockSource

    def tip(self) -> int:
        """The node's block count (height of its best block)."""
        self.check_network()
        return int(self.call("getblockcount"))

    def block_hash(self, height: int) -> str:
        """The node's current hash at ``height``."""
        self.check_network()
        return str(self.call("getblockhash", height))

    def read(self, start: int, end: int) -> Iterator[UtxoBatch]:
        """Batches of complete blocks ``start..end``, ``batch_blocks`` blocks each."""
        self.check_network()
        for lo in range(start, end + 1, self.batch_blocks):
            hi = min(end, lo + self.batch_blocks - 1)
            yield self._read_chunk(lo, hi)

    # ------------------------------------------------------------------ reading

    def _read_chunk(self, lo: int, hi: int) -> UtxoBatch:
        for _attempt in range(MAX_RETRIES_ON_CHANGE):
            heights = list(range(lo, hi + 1))
            answers = self.call_many([("getblockhash", [h]) for h in heights])
            for h, answer in zip(heights, answers, strict=True):
                if isinstance(answer, RpcFailure):
                    raise self._failure(f"getblockhash {h}", answer)
            hashes = [str(x) for x in answers]
            records: list[BlockRecord] = []
            txs: list[_Tx] = []
            i = 0
            while i < len(hashes):
                # Blocks are fetched in groups of about GROUP_BYTES of JSON and parsed at once, so a
                # chunk of large blocks never sits in memory as JSON.
                size = self._group_size()
                for h, want, block in zip(heights[i:i + size], hashes[i:i + size],
                                          self._get_blocks(hashes[i:i + size]), strict=True):
                    if block.get("hash") != want or block.get("height", h) != h:
                        raise InputError(f"{self.shown_url}: asked for block {want} at height {h}, got "
                                         f"{block.get('hash')} at height {block.get('height')}")
                    records.append(self._parse_block(block, txs))
                i += size
            if all(b.prev_hash == a.hash for a, b in itertools.pairwise(records)):
                return self._assemble(records, txs)
            log.info("%s: the node's chain changed while reading %d..%d; reading again", self.chain, lo, hi)
        raise SourceUnavailableError(self.shown_url, f"the node's chain kept changing while reading "
                                                     f"blocks {lo}..{hi}")

    def _group_size(self) -> int:
        if self._bytes_per_block is None:
            return 1  # a first block tells how large blocks are here
        return max(1, min(self.batch_blocks, int(GROUP_BYTES // max(self._bytes_per_block, 1.0))))

    def _get_blocks(self, hashes: list[str]) -> list[dict[str, Any]]:
        levels = VERBOSITY_LEVELS if self._verbosity is None else (self._verbosity,)
        for level in levels:
            flag: int | bool = True if level == 1 else level
            answers = self.call_many([("getblock", [bh, flag]) for bh in hashes])
            self._bytes_per_block = self._last_response_bytes / len(hashes)
            failures = [a for a in answers if isinstance(a, RpcFailure)]
            if failures:
                failure = failures[0]
                last = level == levels[-1]
                if last or failure.code in (RPC_INVALID_ADDRESS_OR_KEY, RPC_IN_WARMUP):
                    raise self._failure("getblock", failure)
                log.info("%s: getblock verbosity %d refused (%s); trying a lower one",
                         self.shown_url, level, failure.message)
                continue
            if self._verbosity is None:
                self._verbosity = level
                log.info("%s: reading blocks with getblock verbosity %d", self.shown_url, level)
            if level == 1:
                self._fill_transactions(answers)
            return answers
        raise AssertionError("unreachable")  # pragma: no cover

    def _fill_transactions(self, blocks: list[dict[str, Any]]) -> None:
        """Replace the txid lists of verbosity-1 blocks by decoded transactions."""
        txids = [t for b in blocks for t in b.get("tx", []) if isinstance(t, str)]
        decoded = self._raw_transactions(txids, "reading blocks of a node without getblock verbosity 2")
        for b in blocks:
            b["tx"] = [decoded[t] if isinstance(t, str) else t for t in b.get("tx", [])]

    def _raw_transactions(self, txids: list[str], why: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(txids))
        for i in range(0, len(unique), 250):
            part = unique[i:i + 250]
            answers = self.call_many([("getrawtransaction", [t, 1]) for t in part])
            for txid, answer in zip(part, answers, strict=True):
                if isinstance(answer, RpcFailure):
                    raise self._failure(f"getrawtransaction {txid}", answer,
                                        f" ({why} needs a node with -txindex)")
                out[txid] = answer
        return out

    def _parse_block(self, block: dict[str, Any], txs: list[_Tx]) -> BlockRecord:
        """The block's record; its transactions are appended to ``txs``."""
        height = int(block["height"])
        time = int(block["time"])
        if block.get("mweb"):
            self._notes.add(MWEB_NOTE)
        block_txs = block.get("tx") or []
        for index, tx in enumerate(block_txs):
            txs.append(self._parse_tx(tx, height, time, index))
        return BlockRecord(self.chain, height, str(block["hash"]), block.get("previousblockhash"), time,
                           len(block_txs))

    def _assemble(self, records: list[BlockRecord], txs: list[_Tx]) -> UtxoBatch:
        self._resolve(txs)
        batch = UtxoBatch(self.chain, blocks=records)
        for t in txs:
            fee = self._fee(t)
            batch.add_tx(t.txid, t.height, t.time, t.index, fee=fee, coinbase=t.coinbase, size=t.size,
                         vsize=t.vsize, version=t.version, locktime=t.locktime, segwit=t.segwit)
            for n, address, value, script_type in t.outputs:
                batch.add_output(t.txid, n, address, value, script_type)
            for n, prev_txid, prev_n, sequence, address, value in t.inputs:
                batch.add_input(t.txid, n, prev_txid, prev_n, sequence=sequence, address=address, value=value)
        return batch

    def _amount(self, value: Any, what: str) -> int:
        return to_base_units(value, self.params.decimals, what)

    def _output(self, out: dict[str, Any], what: str) -> tuple[str | None, int, str]:
        spk = out.get("scriptPubKey") or {}
        script_hex = spk.get("hex")
        if not isinstance(script_hex, str):
            raise InputError(f"{self.shown_url}: {what} has no scriptPubKey hex")
        try:
            script = bytes.fromhex(script_hex)
        except ValueError:
            raise InputError(f"{self.shown_url}: {what} has a scriptPubKey that is not hex") from None
        script_type, address = classify_script(self.params, script)
        return address, self._amount(out.get("value"), what), script_type.value

    def _parse_tx(self, tx: dict[str, Any], height: int, time: int, index: int) -> _Tx:
        try:
            txid = str(tx["txid"])
            vin = tx.get("vin") or []
            vout = tx.get("vout") or []
        except (KeyError, TypeError):
            raise InputError(f"{self.shown_url}: block {height} holds a transaction without txid") from None
        coinbase = bool(vin) and "coinbase" in vin[0]
        node_fee = tx.get("fee")
        t = _Tx(txid=txid, height=height, time=time, index=index, coinbase=coinbase,
                size=_opt_int(tx.get("size")), vsize=_opt_int(tx.get("vsize")),
                version=_opt_int(tx.get("version")), locktime=_opt_int(tx.get("locktime")),
                segwit=any("txinwitness" in i for i in vin),
                node_fee=None if coinbase or node_fee is None else self._amount(node_fee, f"tx {txid} fee"),
                shielded_net=self._shielded_net(tx))
        for out in vout:
            if out.get("ismweb"):
                continue  # an MWEB output: confidential, not on the canonical chain
            n = int(out["n"])
            address, value, script_type = self._output(out, f"tx {txid} output {n}")
            t.outputs.append((n, address, value, script_type))
        if coinbase:
            return t
        for n, i in enumerate(vin):
            if i.get("ismweb") or "txid" not in i:
                continue
            spent_address: str | None = None
            spent_value: int | None = None
            prevout = i.get("prevout")
            if isinstance(prevout, dict):
                spent_address, spent_value, _ = self._output(prevout, f"tx {txid} input {n} prevout")
            t.inputs.append([n, str(i["txid"]), int(i["vout"]), _opt_int(i.get("sequence")), spent_address,
                             spent_value])
        return t

    def _shielded_net(self, tx: dict[str, Any]) -> int:
        """Value leaving the shielded pools into this transaction's transparent part (negative: entering)."""
        net = 0
        txid = tx.get("txid")
        for key in ("valueBalance",):
            if tx.get(key) is not None:
                net += self._amount(tx[key], f"tx {txid} {key}")
        orchard = tx.get("orchard")
        if isinstance(orchard, dict) and orchard.get("valueBalance") is not None:
            net += self._amount(orchard["valueBalance"], f"tx {txid} orchard valueBalance")
        for js in tx.get("vjoinsplit") or []:
            net += self._amount(js.get("vpub_new", 0), f"tx {txid} vpub_new")
            net -= self._amount(js.get("vpub_old", 0), f"tx {txid} vpub_old")
        if net or tx.get("vjoinsplit") or tx.get("vShieldedSpend") or tx.get("vShieldedOutput"):
            self._notes.add(SHIELDED_NOTE)
        return net

    def _resolve(self, txs: list[_Tx]) -> None:
        """Fill inputs from outputs in the same chunk, then (enrich_inputs) from getrawtransaction."""
        outputs = {(t.txid, n): (address, value) for t in txs for n, address, value, _ in t.outputs}
        missing: list[list[Any]] = []
        for t in txs:
            for row in t.inputs:
                if row[5] is None:
                    found = outputs.get((row[1], row[2]))
                    if found is not None:
                        row[4], row[5] = found
                    else:
                        missing.append(row)
        if not missing or not self.enrich_inputs:
            return
        decoded = self._raw_transactions([row[1] for row in missing], "--enrich-inputs")
        for row in missing:
            prev = decoded[row[1]]
            for out in prev.get("vout") or []:
                if int(out.get("n", -1)) == row[2] and not out.get("ismweb"):
                    row[4], row[5], _ = self._output(out, f"tx {row[1]} output {row[2]}")
                    break
            else:
                raise InputError(f"{self.shown_url}: transaction {row[1]} has no output {row[2]}")

    def _fee(self, t: _Tx) -> int | None:
        if t.coinbase:
            return None
        if t.node_fee is not None:
            return t.node_fee
        if any(row[5] is None for row in t.inputs):
            return None
        spent: int = sum(row[5] for row in t.inputs)
        return spent - sum(o[2] for o in t.outputs) + t.shielded_net


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    return int(value)


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
