"""Downloading with verification, against an HTTP server on 127.0.0.1 that the tests run."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from numbamlp.datasets import loaders as datasets
from numbamlp.datasets.download import (
    FASHION_MNIST_MIRRORS,
    MIRRORS_ENV,
    download_verified,
    fashion_mnist_mirrors,
)
from numbamlp.errors import NumbamlpError

TIMEOUT = 5  # seconds; everything is local


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours proxy variables; a proxy must not intercept requests to 127.0.0.1.
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def serve():
    """serve({path: bytes}) starts a server on an ephemeral port; returns (base_url, hits)."""
    started = []

    def start(files: dict[str, bytes]) -> tuple[str, list[str]]:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                hits.append(path)
                body = files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", hits

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url() -> str:
    """A URL on a local port nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


PAYLOAD = b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03"  # a 3-element IDX file
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_decompressed_content(serve, tmp_path):
    base, hits = serve({"f.gz": gzip.compress(PAYLOAD, mtime=0)})
    dest = tmp_path / "sub" / "f.gz"
    lines: list[str] = []
    out = download_verified([base + "f.gz"], dest, PAYLOAD_SHA, timeout=TIMEOUT, log=lines.append)
    assert out == dest
    assert gzip.decompress(dest.read_bytes()) == PAYLOAD
    assert leftovers(dest.parent) == ["f.gz"]  # no temporary file left behind
    assert hits == ["f.gz"]
    assert lines == [f"downloading {base}f.gz"]


def test_uncompressed_mirror_content_is_accepted(serve, tmp_path):
    # The checksum is of the decompressed data, so a mirror serving the raw file also verifies.
    base, _ = serve({"f.gz": PAYLOAD})
    dest = download_verified([base + "f.gz"], tmp_path / "f.gz", PAYLOAD_SHA, timeout=TIMEOUT)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_content_is_rejected_and_not_kept(serve, tmp_path):
    base, _ = serve({"f.gz": gzip.compress(PAYLOAD + b"\x04")})
    dest = tmp_path / "f.gz"
    with pytest.raises(NumbamlpError) as e:
        download_verified([base + "f.gz"], dest, PAYLOAD_SHA, timeout=TIMEOUT)
    msg = str(e.value)
    assert "sha256" in msg and PAYLOAD_SHA in msg and base in msg
    assert "`data_dir`" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert not dest.exists()
    assert leftovers(tmp_path) == []


def test_corrupt_gzip_is_rejected(serve, tmp_path):
    gz = gzip.compress(PAYLOAD * 50)
    base, _ = serve({"f.gz": gz[: len(gz) // 2]})
    with pytest.raises(NumbamlpError, match="not a readable"):
        download_verified([base + "f.gz"], tmp_path / "f.gz", PAYLOAD_SHA, timeout=TIMEOUT)
    assert leftovers(tmp_path) == []


def test_failed_download_keeps_existing_file(serve, tmp_path):
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"previous")
    base, _ = serve({"f.gz": b"wrong"})
    with pytest.raises(NumbamlpError):
        download_verified([base + "f.gz"], dest, PAYLOAD_SHA, timeout=TIMEOUT)
    assert dest.read_bytes() == b"previous"


def test_dead_and_missing_mirrors_fall_through_to_good_one(serve, dead_url, tmp_path):
    empty_base, empty_hits = serve({})
    good_base, good_hits = serve({"f.gz": gzip.compress(PAYLOAD)})
    urls = [dead_url + "f.gz", empty_base + "f.gz", good_base + "f.gz"]
    dest = download_verified(urls, tmp_path / "f.gz", PAYLOAD_SHA, timeout=TIMEOUT)
    assert gzip.decompress(dest.read_bytes()) == PAYLOAD
    assert empty_hits == ["f.gz"] and good_hits == ["f.gz"]


def test_total_failure_lists_every_mirror(serve, dead_url, tmp_path):
    empty_base, _ = serve({})
    urls = [dead_url + "f.gz", empty_base + "f.gz", "notaurl"]
    with pytest.raises(NumbamlpError) as e:
        download_verified(urls, tmp_path / "f.gz", PAYLOAD_SHA, timeout=TIMEOUT)
    msg = str(e.value)
    assert "Could not download Fashion-MNIST file f.gz" in msg
    assert f"{dead_url}f.gz: connection refused" in msg
    assert f"{empty_base}f.gz: HTTP Error 404" in msg
    assert "notaurl:" in msg
    assert leftovers(tmp_path) == []


def test_mirror_list_env_override(monkeypatch):
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    assert fashion_mnist_mirrors() == list(FASHION_MNIST_MIRRORS)
    monkeypatch.setenv(MIRRORS_ENV, " http://a/x , ,http://b/y/ ")
    assert fashion_mnist_mirrors() == ["http://a/x/", "http://b/y/"]


@pytest.fixture
def fashion_env(monkeypatch, tmp_path, fake_fashion):
    """No system copy, cache in tmp_path, checksums of the synthetic files."""
    monkeypatch.setattr(datasets, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "no-system-copy")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SHA256", fake_fashion.sha256)
    monkeypatch.setenv("NUMBAMLP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fashion-mnist"


def test_fashion_mnist_downloads_into_cache(
    serve, dead_url, monkeypatch, fashion_env, fake_fashion
):
    files = {f"{s}.gz": gzip.compress(b) for s, b in fake_fashion.raw.items()}
    base, hits = serve(files)
    monkeypatch.setenv(MIRRORS_ENV, f"{dead_url},{base}")
    ds = datasets.load_fashion_mnist()
    assert sorted(hits) == sorted(files)
    assert leftovers(fashion_env) == sorted(files)
    for stem, raw in fake_fashion.raw.items():
        assert gzip.decompress((fashion_env / f"{stem}.gz").read_bytes()) == raw
    assert "downloaded" in ds.source and str(fashion_env) in ds.source
    assert ds.X_train.shape == (12, 12) and ds.X_test.shape == (5, 12)
    np.testing.assert_array_equal(ds.y_train, fake_fashion.arrays["train-labels-idx1-ubyte"])
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"

    # Second load: from the cache, no request made.
    ds2 = datasets.load_fashion_mnist()
    assert len(hits) == len(files)
    assert "cache" in ds2.source
    np.testing.assert_array_equal(ds2.X_train, ds.X_train)
    assert datasets.find_datasets()["fashion-mnist"] == str(fashion_env)


def test_fashion_mnist_download_of_wrong_data_fails_cleanly(
    serve, monkeypatch, fashion_env, fake_fashion
):
    files = {f"{s}.gz": gzip.compress(b) for s, b in fake_fashion.raw.items()}
    files["t10k-images-idx3-ubyte.gz"] = gzip.compress(b"not the file")
    base, _ = serve(files)
    monkeypatch.setenv(MIRRORS_ENV, base)
    with pytest.raises(NumbamlpError, match="t10k-images-idx3-ubyte.gz.*sha256"):
        datasets.load_fashion_mnist()
    assert not (fashion_env / "t10k-images-idx3-ubyte.gz").exists()
    assert not any(p.name.endswith(".part") for p in fashion_env.iterdir())


def test_fashion_mnist_no_download(fashion_env, monkeypatch, tmp_path):
    monkeypatch.setenv(MIRRORS_ENV, "http://127.0.0.1:9/")  # would fail if it were contacted
    with pytest.raises(NumbamlpError, match="downloading is off") as e:
        datasets.load_fashion_mnist(download=False)
    assert "apt-get install dataset-fashion-mnist" in str(e.value)
    assert "`data_dir`" in str(e.value)
    assert not fashion_env.exists()
