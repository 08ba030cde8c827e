"""Test PKI made with the openssl command line: a CA and certificates it signs (no files in the repository)."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str = "aiws-test-ca") -> Certificate:
    """A self-signed CA (basicConstraints CA:TRUE) in *folder*."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = Certificate(folder / f"{name}.pem", folder / f"{name}.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca.key), "-out", str(ca.cert),
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def issue(ca: Certificate, folder: Path, name: str, ip: str = "127.0.0.1") -> Certificate:
    """A leaf certificate signed by *ca* for IP address *ip* (subjectAltName), for servers and clients."""
    folder.mkdir(parents=True, exist_ok=True)
    leaf = Certificate(folder / f"{name}.pem", folder / f"{name}.key")
    csr = folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(leaf.key), "-out", str(csr),
             "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
             "-out", str(leaf.cert), "-days", "2", "-extfile", str(ext))
    return leaf
