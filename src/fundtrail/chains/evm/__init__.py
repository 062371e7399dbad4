"""EVM chains: JSON-RPC and ethereum-etl readers, with the pure decoders they share (``decode``)."""
