"""A TLS terminator with client-certificate checks in front of a plaintext Kafka broker.

The test broker (Tansu) cannot serve TLS, so `kafka_e2e.rs`'s TLS test puts this in front of
it, as a TLS-terminating load balancer would be: the broker advertises this proxy's port, so
every connection a client makes goes through TLS here. Clients must present a certificate
signed by the CA (mutual TLS, as with MSK's "TLS" client authentication).

Usage: python3 tls_proxy.py TARGET_PORT CERT KEY CA  -> prints the listening port, then serves.
"""
import asyncio
import ssl
import sys

target_port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
