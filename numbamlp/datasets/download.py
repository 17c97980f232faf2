"""Download a data file from a list of mirrors, verified before it gets its final name.

Only the standard library is used (urllib). A download goes to a temporary file in the
destination directory, is checked against the sha256 of its *decompressed* content (gzip
containers of the same data differ between mirrors), and only then is moved into place with
``os.replace``, which is atomic within one file system. So the final name never holds a partial or
unverified file, even if the process is killed mid-download.
"""

from __future__ import annotations

import http.client
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

from numbamlp.datasets.idx import sha256_of_idx
from numbamlp.errors import NumbamlpError

__all__ = [
    "FASHION_MNIST_MIRRORS",
    "MIRRORS_ENV",
    "download_verified",
    "fashion_mnist_mirrors",
]

# Base URLs of the Fashion-MNIST files, tried in order (both are the ones upstream documents).
FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

# Comma-separated base URLs replacing FASHION_MNIST_MIRRORS (an internal mirror; tests use it to
# point at a server on 127.0.0.1).
MIRRORS_ENV = "NUMBAMLP_FASHION_MNIST_MIRRORS"

MANUAL_FASHION_HINT = (
    "Provide it manually instead: install Debian's package (`apt-get install "
    "dataset-fashion-mnist`, which puts the files in /usr/share/datasets/fashion-mnist), or "
    "download the four *-ubyte.gz files yourself and pass their folder as `data_dir`."
)

_CHUNK = 1 << 20


def fashion_mnist_mirrors() -> list[str]:
    """Mirror base URLs, from $NUMBAMLP_FASHION_MNIST_MIRRORS if set, each ending in '/'."""
    env = os.environ.get(MIRRORS_ENV, "")
    bases = [b.strip() for b in env.split(",") if b.strip()] or list(FASHION_MNIST_MIRRORS)
    return [b if b.endswith("/") else b + "/" for b in bases]


def _fetch(url: str, out, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``out``."""
    with urlopen(url, timeout=timeout) as resp:
        # http.client raises IncompleteRead itself when Content-Length is set and the body is
        # short; the checksum catches any other short or altered body.
        while chunk := resp.read(_CHUNK):
            out.write(chunk)


def download_verified(
    url_list: Iterable[str],
    dest: Path,
    expected_sha256_of_decompressed: str,
    timeout: float = 30,
    *,
    what: str = "Fashion-MNIST",
    manual_hint: str = MANUAL_FASHION_HINT,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download the first mirror whose content verifies, atomically, to ``dest``; return ``dest``.

    Each URL in ``url_list`` is tried in turn. A mirror that fails (network error, HTTP error,
    timeout, content whose decompressed sha256 differs from ``expected_sha256_of_decompressed``)
    is recorded and the next one is tried. If none succeeds, raise a NumbamlpError listing every
    mirror and why it failed, plus ``manual_hint``.
    """
    dest = Path(dest)
    urls: Sequence[str] = list(url_list)
    expected = expected_sha256_of_decompressed.lower()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NumbamlpError(
            f"Cannot create the folder {dest.parent} to download {what} into "
            f"({e.strerror or e}); set NUMBAMLP_CACHE to a writable folder."
        ) from None

    failures: list[str] = []
    for url in urls:
        if log is not None:
            log(f"downloading {url}")
        tmp_name: str | None = None
        try:
            # Same directory as dest, so os.replace is a rename on one file system (atomic).
            with tempfile.NamedTemporaryFile(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
            ) as tmp:
                tmp_name = tmp.name
                _fetch(url, tmp, timeout)
            try:
                got = sha256_of_idx(tmp_name)
            except NumbamlpError:
                failures.append(f"{url}: the content is not a readable (gzipped) file")
                continue
            if got != expected:
                failures.append(
                    f"{url}: wrong content (sha256 of the decompressed data is {got}, "
                    f"expected {expected})"
                )
                continue
            os.replace(tmp_name, dest)
            tmp_name = None  # now owned by dest; nothing to clean up
            return dest
        except (OSError, http.client.HTTPException, ValueError) as e:
            # OSError covers URLError, HTTPError, timeouts, refused connections and disk errors;
            # ValueError is urllib's "unknown url type" for a malformed mirror entry.
            failures.append(f"{url}: {_describe(e)}")
            if isinstance(e, HTTPError):
                e.close()  # an HTTPError holds the open response
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass

    tried = "; ".join(failures) if failures else "no mirrors were configured"
    raise NumbamlpError(
        f"Could not download {what} file {dest.name}. Mirrors tried: {tried}. {manual_hint}"
    )


def _describe(e: BaseException) -> str:
    """A short human description of a download failure."""
    reason = getattr(e, "reason", None)  # URLError wraps the socket error in .reason
    if reason is not None and not isinstance(reason, str):
        e = reason
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
