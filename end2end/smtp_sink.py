#!/usr/bin/env python3
"""A minimal SMTP server for the browser journeys: accepts every message on loopback and
writes each one (envelope recipients, then the message) to a file in MAIL_DIR. Standard
library only; mail really travels over SMTP from Keyward to it.

    python3 smtp_sink.py PORT MAIL_DIR
"""
import asyncio, os, sys, time

PORT, MAIL_DIR = int(sys.argv[1]), sys.argv[2]
os.makedirs(MAIL_DIR, exist_ok=True)
counter = 0

async def session(reader, writer):
    global counter
    writer.write(b"220 sink ESMTP\r\n")
    rcpt = []
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode(errors="replace").strip()
        upper = cmd.upper()
        if upper.startswith(("EHLO", "HELO")):
            writer.write(b"250 sink\r\n")
        elif upper.startswith("RCPT TO:"):
            rcpt.append(cmd)
            writer.write(b"250 ok\r\n")
        elif upper.startswith("DATA"):
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            body = []
            while True:
                l = await reader.readline()
                if not l or l in (b".\r\n", b".\n"):
                    break
                body.append(l.decode(errors="replace"))
            counter += 1
            name = os.path.join(MAIL_DIR, f"{time.time():.6f}-{counter}.eml")
            with open(name + ".tmp", "w") as f:
                f.write("\n".join(rcpt) + "\n" + "".join(body))
            os.rename(name + ".tmp", name)
            rcpt = []
            writer.write(b"250 queued\r\n")
        elif upper.startswith("QUIT"):
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:
            writer.write(b"250 ok\r\n")
        await writer.drain()
    writer.close()

async def health(reader, writer):
    pass

async def main():
    server = await asyncio.start_server(session, "127.0.0.1", PORT)
    async with server:
        await server.serve_forever()

asyncio.run(main())
