"""Drivers: run the machines of zksync._core against a KazooClient (blocking threads, or asyncio)."""
