"""Ethereum (and EVM chain) JSON-RPC reader: blocks, receipts, ERC-20 logs and call traces.

Per chunk of ``batch_blocks`` blocks the reader sends a handful of JSON-RPC batch requests:

* ``eth_getBlockByNumber(n, true)``: header, transactions, withdrawals;
* ``eth_getBlockReceipts`` (or, where the node lacks it, ``eth_getTransactionReceipt`` per transaction):
  status, ``gasUsed``, ``effectiveGasPrice``, the address of created contracts;
* ``eth_getLogs`` over the chunk for the ``Transfer`` topic (the receipts' logs where the node refuses);
  the receipts' swap, bridge and pool logs are kept for conversions (``logs`` table), with the gas price
  of their transactions and call-data memos (``payloads``);
* ``debug_traceBlockByNumber`` with ``callTracer`` for internal transfers, else ``trace_block``; a node with
  neither is read without internal transfers, which the reader logs once and lists in :attr:`notes`.

What it yields per block: a ``native`` transfer per successful transaction (failed ones move no value),
a ``fee`` transfer from the sender to nobody, ``token`` transfers, ``internal`` transfers, ``withdrawal``
transfers (Gwei turned into wei) and, at height 0, ``genesis`` transfers for the accounts the node lists
(``eth_accounts``, which dev nodes such as anvil prefund) plus any ``genesis_accounts`` given, read with
``eth_getBalance`` at block 0.

TRON (chain ``trx``) is read through its Ethereum-compatible JSON-RPC, which gives accounts as ``0x`` +
20 bytes without TRON's ``41`` prefix: the reader stores them (senders, receivers, token contracts, log
contracts) in TRON's base58check form ``T...``. Values are in sun (6 decimals), TRC-20 transfers are its
``Transfer`` logs; the node has no trace API, so internal transfers and TRC-10 tokens are not read.

Block rewards are not derivable from a block and its receipts without each chain's issuance rules, so
they are left out, and fees go to nobody: the balances of block producers are therefore short of their
rewards and fee income. Only where the node itself reports rewards (Parity-style ``trace_block`` output)
are they written, as ``reward`` transfers.
"""

from __future__ import annotations

import decimal
import json
import logging
import os
import time as _time
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from fundtrail.chains.evm.decode import (
    TRANSFER_TOPIC,
    LogDecodeStats,
    TraceResult,
    decode_rpc_log,
    flatten_geth_traces,
    flatten_parity_traces,
    parse_address,
    parse_hash,
    parse_optional_address,
    parse_optional_quantity,
    parse_quantity,
    transaction_fee,
    withdrawal_wei,
)
from fundtrail.chains.evm.events import KEPT_TOPICS, memo_in_call_data
from fundtrail.domain.addresses import account_address
from fundtrail.domain.chains import NATIVE_ASSET, ChainParams, get_chain
from fundtrail.domain.records import AccountBatch, BlockRecord, PayloadKind, TransferKind
from fundtrail.domain.sources import BlockSource
from fundtrail.errors import InputError, SourceUnavailableError

log = logging.getLogger(__name__)

DEV_CHAIN_IDS = frozenset({31337, 1337})
"""Chain ids of local development nodes (anvil, hardhat, ganache), accepted for any EVM chain name."""

MAX_CALLS_PER_REQUEST = 100
REORG_RETRIES = 3


class TraceMode(StrEnum):
    """Which trace API the reader uses for internal transfers."""

    AUTO = "auto"      # Geth's debug_traceBlockByNumber, else Parity's trace_block, else none
    GETH = "geth"
    PARITY = "parity"
    NONE = "none"


class _ChunkChanged(Exception):
    """The node's chain changed under a chunk being read (a reorg); the chunk is read again."""


def _display_url(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class EthereumRpcSource(BlockSource):
    """Blocks of an EVM chain read from a node's JSON-RPC, as :class:`AccountBatch` es.

    No connection is opened before the first call. ``client`` may be given (tests, custom transports).
    """

    def __init__(self, url: str, chain: str, *, batch_blocks: int = 20, timeout: float = 30,
                 traces: str = "auto", genesis_accounts: Sequence[str] = (),
                 client: httpx.Client | None = None) -> None:
        params = get_chain(chain)
        if params.evm_chain_id is None:
            raise InputError(f"chain {chain!r} is not an EVM chain")
        try:
            self.trace_mode = TraceMode(traces)
        except ValueError:
            raise InputError(f"traces must be one of {', '.join(m.value for m in TraceMode)}, "
                             f"not {traces!r}") from None
        if batch_blocks < 1:
            raise InputError(f"batch_blocks must be at least 1, not {batch_blocks}")
        self.chain = params.name
        self.params = params
        self.expected_chain_id = params.evm_chain_id
        self.url = url
        self.shown_url = _display_url(url)
        self.batch_blocks = batch_blocks
        self.timeout = timeout
        self.genesis_accounts = [parse_address(a, "genesis account") for a in genesis_accounts]
        self.notes: list[str] = []
        """Limits of what was read (no traces, no genesis list ...), for the ingest report."""
        self.log_stats = LogDecodeStats()
        self._client = client
        self._owns_client = client is None
        self._chain_id: int | None = None
        self._block_receipts: bool | None = None   # eth_getBlockReceipts works (None: not tried yet)
        self._logs_by_filter = True                # eth_getLogs works
        self._next_id = 0

    # ------------------------------------------------------------------ transport

    def _http(self) -> httpx.Client:
        if self._client is None:
            auth = None
            user, password = os.environ.get("FUNDTRAIL_RPC_USER"), os.environ.get("FUNDTRAIL_RPC_PASSWORD")
            if user and urlsplit(self.url).username is None:
                auth = httpx.BasicAuth(user, password or "")
            self._client = httpx.Client(timeout=self.timeout, auth=auth)
        return self._client

    def close(self) -> None:
        """Close the HTTP client this source opened."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def __enter__(self) -> EthereumRpcSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: Any) -> Any:
        try:
            response = self._http().post(self.url, content=orjson.dumps(payload),
                                         headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise SourceUnavailableError(self.shown_url, f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise SourceUnavailableError(self.shown_url, "cannot reach the node: "
                                         + _one_line(str(error) or type(error).__name__)) from None
        try:  # the standard parser keeps integers of any size exact
            document = json.loads(response.content, parse_float=decimal.Decimal)
        except ValueError:
            document = None
        if response.status_code >= 400 and not _is_envelope(document):
            raise SourceUnavailableError(self.shown_url, f"HTTP {response.status_code} "
                                         f"{_one_line(response.reason_phrase)}".rstrip())
        if document is None:
            raise SourceUnavailableError(self.shown_url, "the answer is not JSON")
        return document

    def _batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """The response envelopes of ``calls``, in order (JSON-RPC batches of at most 100 calls)."""
        envelopes: list[dict[str, Any]] = []
        for i in range(0, len(calls), MAX_CALLS_PER_REQUEST):
            chunk = calls[i:i + MAX_CALLS_PER_REQUEST]
            first_id = self._next_id
            self._next_id += len(chunk)
            payload = [{"jsonrpc": "2.0", "id": first_id + k, "method": m, "params": p}
                       for k, (m, p) in enumerate(chunk)]
            document = self._post(payload if len(payload) > 1 else payload[0])
            if isinstance(document, dict):
                if len(chunk) > 1:  # one error for the whole batch: batches refused
                    raise SourceUnavailableError(self.shown_url, f"batch request refused: "
                                                 f"{_rpc_message(document)}")
                document = [document]
            if not isinstance(document, list):
                raise SourceUnavailableError(self.shown_url, "the answer is not a JSON-RPC response")
            by_id = {e.get("id"): e for e in document if isinstance(e, dict)}
            for k, (method, _) in enumerate(chunk):
                envelope = by_id.get(first_id + k)
                if envelope is None and len(chunk) == 1 and len(document) == 1:
                    envelope = document[0]  # some servers echo no id for single calls
                if envelope is None:
                    raise SourceUnavailableError(self.shown_url, f"{method}: no answer in the batch")
                envelopes.append(envelope)
        return envelopes

    def _result(self, envelope: Mapping[str, Any], method: str) -> Any:
        if envelope.get("error"):
            raise SourceUnavailableError(self.shown_url, f"{method}: {_rpc_message(envelope)}")
        return envelope.get("result")

    def call(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; an error answer raises SourceUnavailableError."""
        return self._result(self._batch([(method, list(params))])[0], method)

    # ------------------------------------------------------------------ BlockSource

    def chain_id(self) -> int:
        """The node's chain id, checked once against the chain name (dev chain ids pass for any)."""
        if self._chain_id is None:
            got = parse_quantity(self.call("eth_chainId"), "eth_chainId")
            if got in DEV_CHAIN_IDS and got != self.expected_chain_id:
                log.info("%s: local development chain (id %d) read as %s", self.shown_url, got, self.chain)
            elif got != self.expected_chain_id:
                raise InputError(f"{self.shown_url} serves chain id {got}, but {self.chain} is chain id "
                                 f"{self.expected_chain_id}")
            self._chain_id = got
        return self._chain_id

    def tip(self) -> int:
        """The node's highest block height."""
        self.chain_id()
        return parse_quantity(self.call("eth_blockNumber"), "eth_blockNumber")

    def block_hash(self, height: int) -> str:
        """The node's current hash at ``height``."""
        self.chain_id()
        block = self.call("eth_getBlockByNumber", hex(height), False)
        if not block:
            raise InputError(f"{self.shown_url} has no block {height}")
        return parse_hash(block.get("hash"), "block hash")

    def read(self, start: int, end: int) -> Iterator[AccountBatch]:
        """Batches of ``batch_blocks`` complete blocks ``start..end``, in height order."""
        self.chain_id()
        for lo in range(start, end + 1, self.batch_blocks):
            hi = min(lo + self.batch_blocks - 1, end)
            for attempt in range(REORG_RETRIES):
                try:
                    batch = self._read_chunk(lo, hi)
                    break
                except _ChunkChanged as changed:
                    log.warning("%s: %s; reading blocks %d-%d again", self.shown_url, changed, lo, hi)
                    _time.sleep(0.2 * (attempt + 1))
            else:
                raise SourceUnavailableError(self.shown_url, f"blocks {lo}-{hi} kept changing while read "
                                             f"({REORG_RETRIES} tries)")
            yield batch
        stats = self.log_stats
        if stats.erc721_skipped or stats.malformed_skipped:
            log.info("%s: %d ERC-20 transfers read; %d ERC-721 transfers and %d malformed Transfer logs "
                     "skipped", self.shown_url, stats.erc20, stats.erc721_skipped, stats.malformed_skipped)

    # ------------------------------------------------------------------ reading

    def _read_chunk(self, lo: int, hi: int) -> AccountBatch:
        heights = list(range(lo, hi + 1))
        envelopes = self._batch([("eth_getBlockByNumber", [hex(h), True]) for h in heights])
        blocks: list[Mapping[str, Any]] = []
        for h, envelope in zip(heights, envelopes, strict=True):
            block = self._result(envelope, "eth_getBlockByNumber")
            if not block:
                raise InputError(f"{self.shown_url} has no block {h}")
            if parse_quantity(block.get("number"), "block number") != h:
                raise SourceUnavailableError(self.shown_url,
                                             f"asked for block {h}, got {block.get('number')}")
            if blocks and (block.get("parentHash") or "").lower() != blocks[-1]["hash"].lower():
                raise _ChunkChanged(f"block {h} does not follow block {h - 1}")
            blocks.append(block)
        receipts = self._receipts(blocks)
        logs = self._transfer_logs(lo, hi, blocks, receipts)
        traces = self._traces(blocks)
        genesis = self._genesis() if lo == 0 else []
        return self._assemble(blocks, receipts, logs, traces, genesis)

    def _receipts(self, blocks: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """Receipts of every transaction of ``blocks`` by transaction hash, checked to belong to them."""
        with_txs = [b for b in blocks if b.get("transactions")]
        receipts: dict[str, Mapping[str, Any]] = {}
        if not with_txs:
            return receipts
        got_all = False
        if self._block_receipts is not False:
            envelopes = self._batch([("eth_getBlockReceipts", [b["hash"]]) for b in with_txs])
            if all(not e.get("error") and isinstance(e.get("result"), list) for e in envelopes):
                self._block_receipts = True
                for envelope in envelopes:
                    for receipt in envelope["result"]:
                        receipts[str(receipt.get("transactionHash", "")).lower()] = receipt
                got_all = True
            elif self._block_receipts:
                bad = next(e for e in envelopes if e.get("error") or not isinstance(e.get("result"), list))
                raise SourceUnavailableError(self.shown_url, f"eth_getBlockReceipts: {_rpc_message(bad)}")
            else:
                self._block_receipts = False
                log.info("%s: no eth_getBlockReceipts; reading receipts one transaction at a time",
                         self.shown_url)
        if not got_all:
            hashes = [str(tx["hash"]).lower() for b in with_txs for tx in b["transactions"]]
            envelopes = self._batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            for h, envelope in zip(hashes, envelopes, strict=True):
                receipt = self._result(envelope, "eth_getTransactionReceipt")
                if not receipt:
                    raise _ChunkChanged(f"no receipt for transaction {h}")
                receipts[h] = receipt
        for block in with_txs:
            block_hash = block["hash"].lower()
            for tx in block["transactions"]:
                receipt = receipts.get(str(tx["hash"]).lower())
                if receipt is None:
                    raise _ChunkChanged(f"no receipt for transaction {tx['hash']}")
                if str(receipt.get("blockHash", block_hash)).lower() != block_hash:
                    raise _ChunkChanged(f"receipt of {tx['hash']} is from another block")
        return receipts

    def _transfer_logs(self, lo: int, hi: int, blocks: Sequence[Mapping[str, Any]],
                       receipts: Mapping[str, Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
        """``Transfer``-topic logs per block height: from ``eth_getLogs``, else from the receipts."""
        hashes = {parse_quantity(b["number"]): b["hash"].lower() for b in blocks}
        by_height: dict[int, list[Mapping[str, Any]]] = {h: [] for h in hashes}
        if self._logs_by_filter and any(b.get("transactions") for b in blocks):
            envelope = self._batch([("eth_getLogs", [{"fromBlock": hex(lo), "toBlock": hex(hi),
                                                      "topics": [TRANSFER_TOPIC]}])])[0]
            if not envelope.get("error") and isinstance(envelope.get("result"), list):
                for entry in envelope["result"]:
                    height = parse_quantity(entry.get("blockNumber"), "log blockNumber")
                    where = hashes.get(height)
                    if where is None or str(entry.get("blockHash") or where).lower() != where:
                        raise _ChunkChanged(f"a log of block {height} is from another block")
                    by_height[height].append(entry)
                return by_height
            self._logs_by_filter = False
            log.warning("%s: eth_getLogs refused (%s); using the receipts' logs", self.shown_url,
                        _rpc_message(envelope))
        for block in blocks:
            height = parse_quantity(block["number"])
            for tx in block.get("transactions") or []:
                for entry in receipts[str(tx["hash"]).lower()].get("logs") or []:
                    topics = entry.get("topics") or []
                    if topics and str(topics[0]).lower() == TRANSFER_TOPIC:
                        by_height[height].append(entry)
        return by_height

    @staticmethod
    def _trace_call(mode: TraceMode, block: Mapping[str, Any]) -> tuple[str, list[Any]]:
        if mode is TraceMode.GETH:
            return "debug_traceBlockByNumber", [block["number"], {"tracer": "callTracer"}]
        return "trace_block", [block["number"]]

    def _traces(self, blocks: Sequence[Mapping[str, Any]]) -> dict[int, TraceResult]:
        """Trace results per block height (empty when the node has no trace API)."""
        if self.trace_mode is TraceMode.NONE:
            return {}
        if self.trace_mode is TraceMode.AUTO:
            probe = next((b for b in blocks if b.get("transactions")), None)
            if probe is None:
                return {}  # decide on a block that has something to trace
            for mode in (TraceMode.GETH, TraceMode.PARITY):
                call = self._trace_call(mode, probe)
                envelope = self._batch([call])[0]
                if not envelope.get("error") and isinstance(envelope.get("result"), list):
                    self.trace_mode = mode
                    log.info("%s: internal transfers from %s", self.shown_url, call[0])
                    break
            else:
                self.trace_mode = TraceMode.NONE
                note = ("the node has neither debug_traceBlockByNumber nor trace_block: "
                        "internal transfers were not read")
                log.warning("%s: %s", self.shown_url, note)
                self.notes.append(note)
                return {}
        # Geth traces nothing in an empty block; Parity-style traces report its rewards
        traced = [b for b in blocks if b.get("transactions") or self.trace_mode is TraceMode.PARITY]
        if not traced:
            return {}
        calls = [self._trace_call(self.trace_mode, b) for b in traced]
        out: dict[int, TraceResult] = {}
        for block, envelope in zip(traced, self._batch(calls), strict=True):
            method = calls[0][0]
            result = self._result(envelope, method)
            if not isinstance(result, list):
                raise SourceUnavailableError(self.shown_url, f"{method}: unexpected answer for block "
                                             f"{parse_quantity(block['number'])}")
            tx_hashes = [str(tx["hash"]).lower() for tx in block.get("transactions") or []]
            height = parse_quantity(block["number"])
            if self.trace_mode is TraceMode.PARITY and any(
                    str(t.get("blockHash", block["hash"])).lower() != block["hash"].lower() for t in result):
                raise _ChunkChanged(f"the traces of block {height} are from another block")
            try:
                out[height] = (flatten_geth_traces(result, tx_hashes) if self.trace_mode is TraceMode.GETH
                               else flatten_parity_traces(result, tx_hashes))
            except InputError as error:
                raise _ChunkChanged(f"traces of block {height} do not match it ({error})") from None
        return out

    def _genesis(self) -> list[tuple[str, int]]:
        """Genesis allocations: the node's own accounts and ``genesis_accounts``, balances at block 0."""
        accounts = list(self.genesis_accounts)
        envelope = self._batch([("eth_accounts", [])])[0]
        if not envelope.get("error") and isinstance(envelope.get("result"), list):
            accounts.extend(parse_address(a, "eth_accounts") for a in envelope["result"])
        accounts = sorted(set(accounts))
        if not accounts:
            note = ("genesis allocations are not listed over JSON-RPC: balances of genesis accounts "
                    "are short of them")
            log.warning("%s: %s", self.shown_url, note)
            self.notes.append(note)
            return []
        envelopes = self._batch([("eth_getBalance", [a, "0x0"]) for a in accounts])
        allocations = [(a, parse_quantity(self._result(e, "eth_getBalance"), "balance"))
                       for a, e in zip(accounts, envelopes, strict=True)]
        allocations = [(a, v) for a, v in allocations if v > 0]
        log.info("%s: %d genesis allocations read at block 0", self.shown_url, len(allocations))
        return allocations

    def _assemble(self, blocks: Sequence[Mapping[str, Any]], receipts: Mapping[str, Mapping[str, Any]],
                  logs: Mapping[int, list[Mapping[str, Any]]], traces: Mapping[int, TraceResult],
                  genesis: list[tuple[str, int]]) -> AccountBatch:
        batch = AccountBatch(chain=self.chain)
        for block in blocks:
            try:
                _add_block(batch, block, receipts, logs, traces, genesis, self.log_stats)
            except InputError as error:
                raise InputError(f"{self.shown_url}: block {block.get('number')}: {error}") from None
        if self.params.account_b58_prefix:
            _base58_accounts(batch, self.params)
        return batch


def _add_block(batch: AccountBatch, block: Mapping[str, Any], receipts: Mapping[str, Mapping[str, Any]],
               logs: Mapping[int, list[Mapping[str, Any]]], traces: Mapping[int, TraceResult],
               genesis: list[tuple[str, int]], stats: LogDecodeStats) -> None:
    height = parse_quantity(block["number"], "number")
    block_hash = parse_hash(block["hash"], "hash")
    time = parse_quantity(block["timestamp"], "timestamp")
    parent = block.get("parentHash")
    prev_hash = parse_hash(parent, "parentHash") if parent and height > 0 else None
    txs = block.get("transactions") or []
    chain = batch.chain
    batch.blocks.append(BlockRecord(chain, height, block_hash, prev_hash, time, len(txs)))
    trace = traces.get(height)
    failed: set[str] = set()
    native = NATIVE_ASSET
    for tx in txs:
        if not isinstance(tx, Mapping):
            raise InputError("transactions are hashes only; full transactions are needed")
        txid = parse_hash(tx["hash"], "transaction hash")
        index = parse_quantity(tx["transactionIndex"], "transactionIndex")
        receipt = receipts.get(txid, {})
        status_raw = receipt.get("status")
        status: bool | None = None if status_raw in (None, "") else parse_quantity(status_raw, "status") == 1
        if status is None and trace is not None and index in trace.failed_txs:
            status = False  # before Byzantium receipts had no status; the trace tells
        fee = transaction_fee(
            parse_optional_quantity(receipt.get("gasUsed"), "gasUsed"),
            parse_optional_quantity(receipt.get("effectiveGasPrice"), "effectiveGasPrice"),
            parse_optional_quantity(tx.get("gasPrice"), "gasPrice"),
            l1_fee=parse_optional_quantity(receipt.get("l1Fee"), "l1Fee"),
            blob_gas_used=parse_optional_quantity(receipt.get("blobGasUsed"), "blobGasUsed"),
            blob_gas_price=parse_optional_quantity(receipt.get("blobGasPrice"), "blobGasPrice"))
        batch.add_tx(txid, height, time, index, fee=fee, status=status)
        sender = parse_address(tx["from"], "from")
        receiver = (parse_optional_address(tx.get("to"), "to")
                    or parse_optional_address(receipt.get("contractAddress"), "contractAddress")
                    or (trace.created.get(index) if trace is not None else None))
        if status is False:
            failed.add(txid)
        else:
            batch.add_transfer(txid, height, time, 0, TransferKind.NATIVE.value, native, sender, receiver,
                               parse_quantity(tx.get("value", 0), "value"))
            _keep_logs(batch, txid, height, tx, receipt)
        if fee:
            batch.add_transfer(txid, height, time, 0, TransferKind.FEE.value, native, sender, None, fee)
    for entry in logs.get(height, []):
        transfer = decode_rpc_log(entry, stats)
        if transfer is None or transfer.tx_hash in failed:
            continue
        batch.add_transfer(transfer.tx_hash, height, time, transfer.log_index or 0, TransferKind.TOKEN.value,
                           transfer.token, transfer.from_, transfer.to, transfer.value)
    if trace is not None:
        for internal in trace.transfers:
            txid = internal.tx_hash or parse_hash(txs[internal.tx_index]["hash"], "transaction hash")
            if txid in failed:
                continue
            batch.add_transfer(txid, height, time, internal.position, TransferKind.INTERNAL.value, native,
                               internal.from_, internal.to, internal.value)
        for reward in trace.rewards:
            batch.add_transfer(None, height, time, reward.position, TransferKind.REWARD.value, native, None,
                               reward.to, reward.value)
    for position, withdrawal in enumerate(block.get("withdrawals") or []):
        amount = parse_quantity(withdrawal.get("amount", 0), "withdrawal amount")
        if amount:
            batch.add_transfer(None, height, time, position, TransferKind.WITHDRAWAL.value, native, None,
                               parse_address(withdrawal.get("address"), "withdrawal address"),
                               withdrawal_wei(amount))
    if height == 0:
        for position, (address, value) in enumerate(genesis):
            batch.add_transfer(None, height, time, position, TransferKind.GENESIS.value, native, None,
                               address, value)


def _base58_accounts(batch: AccountBatch, params: ChainParams) -> None:
    """Turn the ``0x`` hex accounts of ``batch`` into the chain's base58check form (TRON's ``T...``)."""
    shown: dict[str, str] = {}

    def one(address: str) -> str:
        text = shown.get(address)
        if text is None:
            text = shown[address] = account_address(params, bytes.fromhex(address[2:]))
        return text

    batch.tr_from = [None if a is None else one(a) for a in batch.tr_from]
    batch.tr_to = [None if a is None else one(a) for a in batch.tr_to]
    batch.tr_asset = [a if a == NATIVE_ASSET else one(a) for a in batch.tr_asset]
    batch.logs.address = [one(a) for a in batch.logs.address]


def _keep_logs(batch: AccountBatch, txid: str, height: int, tx: Mapping[str, Any],
               receipt: Mapping[str, Any]) -> None:
    """Keep the receipt's logs that conversions decode, the gas price beside them, and a call-data memo."""
    kept = False
    for entry in receipt.get("logs") or []:
        topics = [str(t).lower() for t in entry.get("topics") or []]
        if entry.get("removed") or not topics or topics[0] not in KEPT_TOPICS:
            continue
        batch.logs.add(txid, height, parse_quantity(entry.get("logIndex"), "logIndex"),
                       parse_address(entry.get("address"), "log address"), topics,
                       str(entry.get("data") or "0x").lower())
        kept = True
    price = (parse_optional_quantity(receipt.get("effectiveGasPrice"), "effectiveGasPrice")
             or parse_optional_quantity(tx.get("gasPrice"), "gasPrice"))
    if kept and price:
        batch.payloads.add(txid, height, 0, PayloadKind.GAS_PRICE, str(price))
    memo = memo_in_call_data(str(tx.get("input") or ""))
    if memo is not None:
        batch.payloads.add(txid, height, 0, PayloadKind.MEMO, memo)


def _is_envelope(document: Any) -> bool:
    if isinstance(document, list):
        return bool(document) and all(isinstance(e, dict) and ("result" in e or "error" in e)
                                      for e in document)
    return isinstance(document, dict) and ("result" in document or "error" in document)


def _rpc_message(envelope: Mapping[str, Any]) -> str:
    error = envelope.get("error")
    if isinstance(error, Mapping):
        message = _one_line(str(error.get("message", "error")))
        code = error.get("code")
        return f"{message} (code {code})" if code is not None else message
    if error:
        return _one_line(str(error))
    return "unexpected answer"
