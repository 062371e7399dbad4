"""Raw block parsing and the block-file reader, against real mainnet blocks (bitcoin_raw_blocks)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fundtrail.chains.bitcoin.raw import (
    Block,
    bip34_height,
    iter_block_bytes,
    merkle_root,
    open_block_file,
    parse_block,
    parse_header,
    parse_transaction,
    read_block_files,
)
from fundtrail.domain.records import UtxoBatch
from fundtrail.errors import BlockValidationError, InputError, ParseError

MAGIC = bytes.fromhex("f9beb4d9")
LTC_MAGIC = bytes.fromhex("fbc0b6db")
B574200 = "block-0000000000000000001602407ac49862a7bca9d00f7f402db20b7be2f5de59d2.blk"
B540107 = "block-00000000000000000021868c2cefc52a480d173c849412fe81c4e5ab806f94ab.blk"
HAL = "1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3"
SATOSHI_9 = "12cbQLTFMXRnSzktFkuoG3eHoMeFtpTu3S"  # paid by the block-9 coinbase
GENESIS = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


@pytest.fixture(scope="module")
def raw_dir(shared_data: Path) -> Path:
    return shared_data / "bitcoin_raw_blocks"


@pytest.fixture(scope="module")
def blocks_1_255(raw_dir: Path) -> list[bytes]:
    with bz2.open(raw_dir / "blocks1-256.bz2", "rb") as f:
        return list(iter_block_bytes(f, MAGIC, "blocks1-256.bz2"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def block_574200(raw_dir: Path) -> Block:
    return parse_block((raw_dir / B574200).read_bytes())


def _framed(blocks: list[bytes], magic: bytes = MAGIC) -> bytes:
    return b"".join(magic + struct.pack("<I", len(b)) + b for b in blocks)


def _no_parent(_hash: str) -> int | None:
    return None


def _read(paths: list[Path], **kw: object) -> list[UtxoBatch]:
    return list(read_block_files(paths, "btc", known_height=kw.pop("known_height", _no_parent),  # type: ignore[arg-type]
                                 **kw))  # type: ignore[arg-type]


def _heights(batches: list[UtxoBatch]) -> dict[str, int]:
    return {b.hash: b.height for batch in batches for b in batch.blocks}


# ------------------------------------------------------------------------------------------------
# Blocks and transactions: the README's expected values


def test_block_574200(block_574200: Block) -> None:
    b = block_574200
    assert b.hash == "0000000000000000001602407ac49862a7bca9d00f7f402db20b7be2f5de59d2"
    assert b.header.version == 0x20000000
    assert b.header.merkle_root == "7343589f88a866dee0247b29d1330467201e7eb9bb0001a01ac0922a983a9e52"
    assert datetime.fromtimestamp(b.header.time, UTC).date().isoformat() == "2019-05-02"
    assert len(b.txs) == 3315
    assert b.size == 1_245_250
    assert b.weight == 3_993_106
    assert sum(t.segwit for t in b.txs) == 1341
    assert sum(len(t.inputs) for t in b.txs) == 5055
    assert sum(len(t.outputs) for t in b.txs) == 8150
    coinbase = b.txs[0]
    assert coinbase.is_coinbase and not any(t.is_coinbase for t in b.txs[1:])
    assert coinbase.txid == "57233bf44b82ef3662479e5c80f71ba00c1ae82e8c9739213841f27a2f3d0d79"
    assert coinbase.output_value == 1_300_076_961
    assert sum(t.output_value for t in b.txs) == 1_168_464_839_990
    assert b.bip34_height == 574_200
    for t in b.txs:
        assert t.weight == 4 * t.size if not t.segwit else t.weight < 4 * t.size
        assert t.vsize == -(-t.weight // 4)
        assert (t.txid != t.wtxid) == t.segwit


def test_block_540107(raw_dir: Path) -> None:
    b = parse_block((raw_dir / B540107).read_bytes())
    assert b.hash == "00000000000000000021868c2cefc52a480d173c849412fe81c4e5ab806f94ab"
    assert b.header.merkle_root == "bc337232e053ba46ae12f21c640d16190cbba10f914759ef54a7f07eda58be70"
    # the README's 2018-09-06 is a local date: the header says 23:30 UTC on the 5th
    midnight = datetime(2018, 9, 6, tzinfo=UTC).timestamp()
    assert -3600 <= b.header.time - midnight < 0
    assert (len(b.txs), b.size, b.weight) == (230, 2_259_447, 3_993_333)
    assert sum(t.segwit for t in b.txs) == 104
    assert sum(len(t.inputs) for t in b.txs) == 7033
    assert sum(len(t.outputs) for t in b.txs) == 472
    assert b.txs[0].txid == "5301a7831d21d8395e511ba4786ddcd71b630148bd6bb902f4b1c71b7df563ed"
    assert b.txs[0].output_value == 1_254_491_058
    assert b.bip34_height == 540_107


def test_block_277647_from_framed_bz2(raw_dir: Path) -> None:
    with open_block_file(raw_dir / "277647.dat.bz2") as f:
        blocks = [parse_block(d) for d in iter_block_bytes(f, MAGIC, "277647.dat.bz2")]
    assert len(blocks) == 1
    b = blocks[0]
    h = b.header
    assert b.hash == "0000000000000000054a714e580b16c583701712ab91060e92dbde6eb1e052a8"
    assert (h.version, h.bits, h.nonce) == (2, 0x1903A30C, 2528772957)
    assert h.merkle_root == "36ac31298eb05c23be1f775d635104705e4560c6532b95c158023c6dc9af06c3"
    assert h.prev_hash == "0000000000000000c86826ab2fbe4639ec413004955a36e77c2267988579e653"
    assert datetime.fromtimestamp(h.time, UTC).date().isoformat() == "2013-12-30"
    assert (len(b.txs), b.size) == (213, 149_164)
    assert sum(len(t.inputs) for t in b.txs) == 733
    assert sum(len(t.outputs) for t in b.txs) == 769
    assert b.txs[0].txid == "0fc1f998e6fc1fa43a879cea4a54fe9947e02b925ebc46237a2406c50e0f07ea"
    assert b.txs[0].output_value == 2_504_737_355
    assert sum(t.output_value for t in b.txs) == 177_966_312_176
    assert b.bip34_height == 277_647
    assert not any(t.segwit for t in b.txs)


def test_megatx(raw_dir: Path) -> None:
    tx = parse_transaction(bz2.decompress((raw_dir / "megatx.bin.bz2").read_bytes()))
    assert tx.txid == "bb41a757f405890fb0f5856228e23b715702d714d59bf2b1feb70d8b2b4e3e08"
    assert (len(tx.inputs), len(tx.outputs), tx.size) == (5569, 1, 999_657)
    assert not tx.segwit and tx.weight == 4 * 999_657


@pytest.mark.parametrize(("name", "txid"), [
    ("bip69-1.hex", "0a6a357e2f7796444e02638749d9611c008b253fb55f5dc88b739b230ed0c4c3"),
    ("bip69-2.hex", "28204cad1d7fc1d199e8ef4fa22f182de6258a3eaafe1bbe56ebdcacd3069a5f"),
    ("bip69-3.hex", "fbde5d03b027d2b9ba4cf5d4fecab9a99864df2637b25ea4cbcb1796ff6550ca"),
    ("bip69-4.hex", "8131ffb0a2c945ecaf9b9063e59558784f9c3a74741ce6ae2a18d0571dac15bb"),
    ("bip69-5.hex", "ff85e8fc92e71bbc217e3ea9a3bacb86b435e52b6df0b089d67302c293a2b81d"),
])
def test_bip69_txids(raw_dir: Path, name: str, txid: str) -> None:
    tx = parse_transaction(bytes.fromhex((raw_dir / "bip69_txs" / name).read_text().strip()))
    assert tx.txid == txid
    if name == "bip69-1.hex":
        assert (len(tx.inputs), len(tx.outputs)) == (17, 2)


def test_headers_1_to_11(raw_dir: Path) -> None:
    lines = (raw_dir / "blockheaders-mainnet-1-11.txt").read_text().split()
    headers = [parse_header(bytes.fromhex(line)) for line in lines]
    assert len(headers) == 11
    assert headers[0].hash == "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
    assert headers[10].hash == "0000000097be56d606cdd9c54b04d4747e957d3608abe69198c661f2add73073"
    assert headers[0].prev_hash == GENESIS
    for parent, child in zip(headers, headers[1:], strict=False):
        assert child.prev_hash == parent.hash


def test_blocks_1_to_255(blocks_1_255: list[bytes]) -> None:
    blocks = [parse_block(d) for d in blocks_1_255]
    assert len(blocks) == 255 and sum(len(b.txs) for b in blocks) == 262
    assert blocks[0].hash == "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
    assert blocks[254].hash == "00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c"
    assert blocks[0].header.prev_hash == GENESIS
    for parent, child in zip(blocks, blocks[1:], strict=False):
        assert child.header.prev_hash == parent.hash
    multi = [h for h, b in enumerate(blocks, start=1) if len(b.txs) > 1]
    assert multi == [170, 181, 182, 183, 187, 221, 248]
    b170 = blocks[169]
    assert b170.hash == "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee"
    tx = b170.txs[1]
    assert tx.txid == "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    assert [(i.prev_txid, i.prev_n) for i in tx.inputs] == [
        ("0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9", 0)]
    assert [o.value for o in tx.outputs] == [10 * 10**8, 40 * 10**8]
    assert blocks[8].txs[0].txid == "0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9"
    assert all(b.bip34_height is None for b in blocks)  # version 1 blocks


def test_merkle_root_rules() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    assert merkle_root([a]) == a
    # odd levels repeat their last hash
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])
    assert merkle_root([a, b]) != merkle_root([b, a])


def test_bip34_height_encodings() -> None:
    assert bip34_height(bytes.fromhex("03f8c208") + b"rest") == 574_200
    assert bip34_height(bytes.fromhex("51")) == 1  # OP_1 (regtest-style small heights)
    assert bip34_height(bytes.fromhex("00")) == 0
    assert bip34_height(bytes.fromhex("0181")) is None  # negative number
    assert bip34_height(b"") is None
    assert bip34_height(bytes.fromhex("04ffff001d")) == 0x1D00FFFF  # early coinbases push the bits


# ------------------------------------------------------------------------------------------------
# Robustness: any truncation or any changed byte of a pre-segwit block is caught


class _Block(bytes):
    """The block's bytes with a short repr, so that a failing example prints readably."""

    def __repr__(self) -> str:
        return f"<block 277647, {len(self)} bytes>"


@pytest.fixture(scope="module")
def block_277647_bytes(raw_dir: Path) -> bytes:
    with bz2.open(raw_dir / "277647.dat.bz2", "rb") as f:
        return _Block(next(iter(iter_block_bytes(f, MAGIC, "x"))))  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=149_163))
def test_any_truncation_is_rejected(block_277647_bytes: bytes, cut: int) -> None:
    with pytest.raises(BlockValidationError):
        parse_block(block_277647_bytes[:cut], source="cut.blk")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=80, max_value=149_163), xor=st.integers(1, 255))
@example(pos=43_269, xor=233)  # an output-count varint turned into a 64-bit count far past the data
@example(pos=105_498, xor=73)
def test_any_changed_transaction_byte_is_rejected(block_277647_bytes: bytes, pos: int, xor: int) -> None:
    data = bytearray(block_277647_bytes)
    data[pos] ^= xor
    with pytest.raises(BlockValidationError, match="flip.blk"):
        parse_block(bytes(data), source="flip.blk")


def test_parse_transaction_errors(raw_dir: Path) -> None:
    raw = bytes.fromhex((raw_dir / "bip69_txs" / "bip69-3.hex").read_text().strip())
    with pytest.raises(ParseError, match="truncated"):
        parse_transaction(raw[:-3])
    with pytest.raises(ParseError, match="left over"):
        parse_transaction(raw + b"\x00")
    with pytest.raises(ParseError, match="optional data flag"):
        parse_transaction(raw[:4] + b"\x00\x02" + raw[4:])


# ------------------------------------------------------------------------------------------------
# The reader: heights, batches, files


def test_reader_blocks_1_to_255(raw_dir: Path) -> None:
    batches = _read([raw_dir / "blocks1-256.bz2"], batch_size=25)
    assert len(batches) > 5
    heights = _heights(batches)
    assert sorted(heights.values()) == list(range(1, 256))  # block 1's parent is the known genesis
    assert heights["00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee"] == 170
    for batch in batches:  # complete blocks only
        assert sum(b.tx_count for b in batch.blocks) == batch.tx_count
        assert set(batch.tx_height) == {b.height for b in batch.blocks}
        assert all(fee is None for fee in batch.tx_fee)
    txs = sum(b.tx_count for b in batches)
    inputs = sum(len(b.in_txid) for b in batches)
    outputs = sum(len(b.out_txid) for b in batches)
    # 255 coinbases (one output, no input rows) and 7 payments with 2,2,2,2,1,1,2 outputs
    assert (txs, inputs, outputs) == (262, 7, 255 + 12)
    txid = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    (batch,) = [b for b in batches if txid in b.tx_txid]
    i = batch.tx_txid.index(txid)
    assert (batch.tx_height[i], batch.tx_index[i]) == (170, 1)
    assert (batch.tx_coinbase[i], batch.tx_segwit[i]) == (False, False)
    outs = [(n, a, v, s) for t, n, a, v, s in zip(batch.out_txid, batch.out_n, batch.out_address,
                                                  batch.out_value, batch.out_script_type, strict=True)
            if t == txid]
    assert outs == [(0, HAL, 10 * 10**8, "p2pk"), (1, SATOSHI_9, 40 * 10**8, "p2pk")]
    ins = [(p, n, q) for t, p, n, q in zip(batch.in_txid, batch.in_prev_txid, batch.in_prev_n,
                                           batch.in_sequence, strict=True) if t == txid]
    assert ins == [("0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9", 0, 0xFFFFFFFF)]


def test_reader_with_and_without_read_ahead_agree(raw_dir: Path) -> None:
    files = [raw_dir / "blocks1-256.bz2", raw_dir / "277647.dat.bz2"]
    a = _read(files, batch_size=40, read_ahead=True)
    b = _read(files, batch_size=40, read_ahead=False)
    assert [x.blocks for x in a] == [y.blocks for y in b]
    assert [x.out_address for x in a] == [y.out_address for y in b]
    assert _heights(a)["0000000000000000054a714e580b16c583701712ab91060e92dbde6eb1e052a8"] == 277_647  # BIP34


def test_reader_raw_blk_bip34_and_sizes(raw_dir: Path) -> None:
    (batch,) = _read([raw_dir / B574200])
    assert [(b.height, b.tx_count) for b in batch.blocks] == [(574_200, 3315)]
    assert sum(batch.tx_segwit) == 1341
    assert len(batch.out_txid) == 8150 and len(batch.in_txid) == 5055 - 1
    assert sum(batch.out_value) == 1_168_464_839_990
    assert batch.tx_coinbase[0] and not any(batch.tx_coinbase[1:])
    assert sum(batch.tx_vsize) * 4 >= 3_993_106 - 4 * 83  # vsize rounds up; header and count not in txs
    types = set(batch.out_script_type)
    assert {"p2pkh", "p2sh", "p2wpkh", "p2wsh", "nulldata"} <= types
    pairs = list(zip(batch.out_address, batch.out_script_type, strict=True))
    assert all(a is None for a, t in pairs if t == "nulldata")
    assert all(a and a.startswith("bc1q") for a, t in pairs if t in ("p2wpkh", "p2wsh"))


def test_reader_genesis_and_btcd_test_chain(raw_dir: Path) -> None:
    batches = _read([raw_dir / "blk_0_to_4.dat.bz2"])
    blocks = [b for batch in batches for b in batch.blocks]
    assert [b.height for b in blocks] == [0, 1, 2, 3, 4]
    assert [b.tx_count for b in blocks] == [1, 1, 2, 3, 2]
    assert blocks[0].hash == GENESIS and blocks[0].prev_hash == "00" * 32
    assert blocks[1].hash == "00000000ebe5ec3e94d8dfe18100e5c0f3b1955bc6107fbe24d95732b814551b"
    assert blocks[4].hash == "000000002f264d6504013e73b9c913de9098d4d771c1bb219af475d2a01b128e"
    with open_block_file(raw_dir / "blk_0_to_4.dat.bz2") as f:
        genesis = parse_block(next(iter(iter_block_bytes(f, MAGIC, "x"))))
    assert genesis.header.merkle_root == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


BTCD_3 = "00000000474284d20067a4d33f6a02284e6ef70764a3a26d6a5b9df52ef663dd"  # 3A
BTCD_4 = "00000000551dc04c148242d1f648802577df8cf7d4e1b469211016280204a2bf"  # 4A
BTCD_5 = "00000000195f85184e77c18914bd0febd11278d950f5e4731a38f71ed79f044e"  # 5A
BTCD_MAIN_4 = "000000002f264d6504013e73b9c913de9098d4d771c1bb219af475d2a01b128e"


def test_reader_keeps_the_longer_branch(raw_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 3A-4A-5A branch off block 2 of blk_0_to_4 and outgrow its blocks 3-4: those are stale.
    fork = raw_dir / "btcd_fork_blocks"
    files = [raw_dir / "blk_0_to_4.dat.bz2"] + [fork / f"blk_{n}A.dat.bz2" for n in (3, 4, 5)]
    for read_ahead in (True, False):
        caplog.clear()
        heights = _heights(_read(files, read_ahead=read_ahead))
        assert sorted(heights.values()) == [0, 1, 2, 3, 4, 5]
        assert (heights[BTCD_3], heights[BTCD_4], heights[BTCD_5]) == (3, 4, 5)
        assert BTCD_MAIN_4 not in heights
        stale = [r.getMessage() for r in caplog.records if "stale block" in r.getMessage()]
        assert len(stale) == 2 and any(BTCD_MAIN_4 in m for m in stale)
    # without 5A the branches tie at height 4: the one read first wins
    heights = _heights(_read(files[:3]))
    assert heights[BTCD_MAIN_4] == 4 and BTCD_3 not in heights and BTCD_4 not in heights


def test_reader_skips_a_late_stale_block(raw_dir: Path, tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    # A block read after its rival was written (beyond the window) is skipped, and so is its child.
    with open_block_file(raw_dir / "blk_0_to_4.dat.bz2") as f:
        btcd = list(iter_block_bytes(f, MAGIC, "x"))
    path = tmp_path / "blk00000.dat"
    path.write_bytes(_framed(blocks_1_255[:40] + btcd[1:3]))  # btcd's blocks 1 and 2 rival mainnet 1-2
    heights = _heights(_read([path]))
    assert sorted(heights.values()) == list(range(1, 41))
    assert "00000000ebe5ec3e94d8dfe18100e5c0f3b1955bc6107fbe24d95732b814551b" not in heights


def test_reader_skips_duplicate_blocks(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    path = tmp_path / "blk00000.dat"
    path.write_bytes(_framed(blocks_1_255[:30] + blocks_1_255[10:20]))
    batches = _read([path])
    assert sorted(b.height for batch in batches for b in batch.blocks) == list(range(1, 31))


def test_reader_asks_the_store_for_unknown_parents(raw_dir: Path) -> None:
    fork = raw_dir / "btcd_fork_blocks"
    asked: list[str] = []

    def known(h: str) -> int | None:
        asked.append(h)
        return 2

    heights = _heights(_read([fork / "blk_3A.dat.bz2"], known_height=known))
    assert heights == {"00000000474284d20067a4d33f6a02284e6ef70764a3a26d6a5b9df52ef663dd": 3}
    assert len(asked) == 1
    with pytest.raises(BlockValidationError, match="cannot place block 00000000474284d2.*no BIP34"):
        _read([fork / "blk_3A.dat.bz2"])


def test_reader_places_out_of_order_blocks(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    # Bitcoin Core writes blocks out of order: children before parents must still be placed.
    shuffled = blocks_1_255[100:] + blocks_1_255[:100]
    shuffled.reverse()
    path = tmp_path / "blk00000.dat"
    path.write_bytes(_framed(shuffled) + bytes(1000))  # zero padding at the end, as Core preallocates
    batches = _read([path], batch_size=30)
    assert sorted(_heights(batches).values()) == list(range(1, 256))


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2", "plain"])
def test_reader_compressions(tmp_path: Path, blocks_1_255: list[bytes], suffix: str) -> None:
    data = _framed(blocks_1_255[:20])
    path = tmp_path / f"blk00001.dat.{suffix}" if suffix != "plain" else tmp_path / "blk00001.dat"
    packed = {"gz": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}.get(suffix, lambda d: d)(data)
    path.write_bytes(packed)
    assert sorted(_heights(_read([path])).values()) == list(range(1, 21))
    hidden = tmp_path / "noext.dat"  # compression recognised by content too
    hidden.write_bytes(packed)
    assert sorted(_heights(_read([hidden])).values()) == list(range(1, 21))


# ------------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file, the offset or block, and the problem


def _error(paths: list[Path]) -> InputError:
    with pytest.raises(InputError) as info:
        _read(paths)
    message = str(info.value)
    assert "\n" not in message
    return info.value


def test_truncated_file(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    path = tmp_path / "cut.dat"
    path.write_bytes(_framed(blocks_1_255[:10])[:-50])
    err = _error([path])
    assert isinstance(err, BlockValidationError)
    assert str(path) in str(err) and "truncated" in str(err) and "offset" in str(err)


def test_wrong_magic_names_the_chain(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    path = tmp_path / "ltc.dat"
    path.write_bytes(_framed(blocks_1_255[:3], LTC_MAGIC))
    err = _error([path])
    assert str(path) in str(err) and "fbc0b6db is ltc's, not btc's" in str(err)


def test_trailing_garbage(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    path = tmp_path / "tail.dat"
    path.write_bytes(_framed(blocks_1_255[:3]) + b"garbage!")
    err = _error([path])
    assert str(path) in str(err) and "trailing garbage" in str(err)
    padded = tmp_path / "padded.dat"
    padded.write_bytes(_framed(blocks_1_255[:3]) + bytes(64) + b"x")
    assert "trailing garbage" in str(_error([padded]))


def test_merkle_mismatch_names_file_and_block(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    b170 = bytearray(blocks_1_255[169])
    at = b170.find(bytes.fromhex("04ae1a62fe09c5f5"))  # Hal's public key in the output script
    assert at > 0
    b170[at + 10] ^= 0x01
    path = tmp_path / "flipped.dat"
    path.write_bytes(_framed(blocks_1_255[168:169] + [bytes(b170)]))
    err = _error([path])
    assert isinstance(err, BlockValidationError)
    assert str(path) in str(err)
    assert "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee" in str(err)
    assert "merkle root" in str(err)


def test_unparseable_transaction(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    b = bytearray(blocks_1_255[0])
    b[80 + 1 + 4 + 1 + 36] = 0xFC  # coinbase scriptSig length far past the end
    path = tmp_path / "bad.blk"
    path.write_bytes(bytes(b))
    message = str(_error([path]))
    assert str(path) in message and "transaction 0" in message and "past the end" in message


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dat"
    path.write_bytes(bytes(range(7, 250)) * 40)
    message = str(_error([path]))
    assert str(path) in message and "not a btc block file" in message


def test_corrupt_compressed_file(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    path = tmp_path / "cut.dat.bz2"
    path.write_bytes(bz2.compress(_framed(blocks_1_255[:10]))[:-40])
    err = _error([path])
    assert isinstance(err, InputError) and str(path) in str(err)


def test_missing_file_and_account_chain(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="no such file"):
        _read([tmp_path / "nope.dat"])
    with pytest.raises(InputError, match="not a UTXO chain"):
        list(read_block_files([tmp_path / "nope.dat"], "eth", known_height=_no_parent))


def test_reader_stops_cleanly_when_abandoned(raw_dir: Path) -> None:
    gen: Iterator[UtxoBatch] = read_block_files([raw_dir / "blocks1-256.bz2"], "btc",
                                                known_height=_no_parent, batch_size=5)
    first = next(gen)
    assert first.blocks[0].height == 1
    gen.close()  # stops the read-ahead thread


def test_reader_bitcoin_core_blocks_folder_with_xor_key(tmp_path: Path, blocks_1_255: list[bytes]) -> None:
    # Bitcoin Core 28+ obfuscates block files with the 8-byte key in blocks/xor.dat.
    key = bytes.fromhex("0123456789abcdef")
    folder = tmp_path / "blocks"
    folder.mkdir()
    (folder / "xor.dat").write_bytes(key)
    for name, part in (("blk00000.dat", blocks_1_255[:100]), ("blk00001.dat", blocks_1_255[100:])):
        plain = _framed(part) + bytes(37)
        (folder / name).write_bytes(bytes(b ^ key[i % 8] for i, b in enumerate(plain)))
    (folder / "rev00000.dat").write_bytes(b"undo data is not read")
    assert sorted(_heights(_read([folder], batch_size=50)).values()) == list(range(1, 256))
    (folder / "xor.dat").write_bytes(bytes(8))  # a zero key: files are read as they are
    assert "not a btc block file" in str(_error([folder / "blk00001.dat"]))
    with pytest.raises(ParseError, match="without blk"):
        _read([tmp_path])
