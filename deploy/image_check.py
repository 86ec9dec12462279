#!/usr/bin/env python3
"""Checks the runtime stage of deploy/Dockerfile without a container engine.

The runtime stage's base (debian:bookworm-slim) is built with `debootstrap --variant=minbase
bookworm`, the stage's RUN lines run in it with chroot, and the `backtrack` binary goes
where its COPY puts it. Then the image is started the way Kubernetes runs it: root file
system read-only, writable volumes only at the paths the manifests mount, as the stage's
USER, with its ENV. It must:

- find every shared library the binary links (`ldd`, inside the image);
- print its version as that user;
- run `serve directory` against a real nats-server until /readyz answers 200, as uid
  65532 (not root), writing nowhere but its volumes;
- exit 0 on SIGTERM within the drain deadline.

The build stage is the Makefile's own build (Debian bookworm, librocksdb-dev, libclang);
its `cargo build --locked` is checked for an up-to-date Cargo.lock.

Needs root (chroot, mounts) and the Debian mirror. Usage:
    python3 deploy/image_check.py [--binary target/release/backtrack] [--rootfs DIR]
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MANIFEST = ROOT / "deploy" / "kustomize" / "base" / "directory.yaml"
SUITE = {"debian:bookworm-slim": "bookworm"}
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def stages(text: str) -> list:
    """[(base, [(instruction, argument)])] in order; continuation lines joined."""
    joined = text.replace("\\\n", " ")
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            result.append((rest.split()[0], []))
        elif result:
            result[-1][1].append((word, rest.strip()))
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def fail(message: str):
    sys.exit(f"image check failed: {message}")


def build_rootfs(base: str, runs: list, cache: Path) -> Path:
    """The base plus the stage's RUN lines, cached by their text."""
    suite = SUITE.get(base)
    if suite is None:
        fail(f"runtime base {base} is not one this check can build (known: {', '.join(SUITE)})")
    key = hashlib.sha256(json.dumps([base, runs]).encode()).hexdigest()[:16]
    rootfs = cache / key
    if (rootfs / ".complete").exists():
        return rootfs
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("debootstrap") is None:
        run(["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"])
    print(f"image check: debootstrap {suite} (minbase) into {rootfs}")
    run(["debootstrap", "--variant=minbase", suite, str(rootfs), "http://deb.debian.org/debian"],
        stdout=subprocess.DEVNULL)
    shutil.copy("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    with mounted(rootfs, [("proc", "proc"), ("/dev", "dev")]):
        for command in runs:
            print(f"image check: RUN {command[:100]}")
            run([CHROOT, str(rootfs), "/bin/sh", "-c", command], stdout=subprocess.DEVNULL)
    (rootfs / ".complete").touch()
    return rootfs


class mounted:
    """Mounts (source, target inside root) for the block; "proc" mounts procfs."""

    def __init__(self, root: Path, mounts: list, read_only_root: bool = False):
        self.root, self.mounts, self.read_only_root = root, mounts, read_only_root
        self.done = []

    def __enter__(self):
        if self.read_only_root:
            run(["mount", "--bind", str(self.root), str(self.root)])
            self.done.append(self.root)
            run(["mount", "-o", "remount,bind,ro", str(self.root)])
        for source, target in self.mounts:
            where = self.root / target  # made beforehand: the root may be read-only
            if source == "proc":
                run(["mount", "-t", "proc", "proc", str(where)])
            else:
                run(["mount", "--bind", source, str(where)])
            self.done.append(where)
        return self

    def __exit__(self, *exc):
        for where in reversed(self.done):
            subprocess.run(["umount", "-l", str(where)], check=False)


def volume_paths() -> list:
    """Where the directory's manifest mounts volumes (writable except the secret)."""
    paths = []
    for line in MANIFEST.read_text().splitlines():
        line = line.strip()
        if line.startswith("mountPath:"):
            paths.append(line.split(":", 1)[1].strip())
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=None)
    parser.add_argument("--rootfs", default=str(ROOT / ".tools" / "image-rootfs"))
    parser.add_argument("--nats-server", default=shutil.which("nats-server") or str(ROOT / ".tools" / "py" / "bin" / "nats-server"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        fail("needs root (chroot and mounts)")

    build, runtime = stages(DOCKERFILE.read_text())[-2:]
    build_runs = [a for w, a in build[1] if w == "RUN"]
    if not any("--locked" in r for r in build_runs):
        fail("the build stage does not build with --locked")
    run(["cargo", "metadata", "--locked", "--format-version", "1", "--no-deps"], cwd=ROOT,
        stdout=subprocess.DEVNULL)
    print("image check: Cargo.lock is current (cargo build --locked will not change it)")

    base, steps = runtime
    runs = [a for w, a in steps if w == "RUN"]
    env = {}
    user, workdir, entrypoint, copy_to = None, "/", None, None
    for word, arg in steps:
        if word == "ENV":
            for part in shlex.split(arg):
                k, _, v = part.partition("=")
                env[k] = v
        elif word == "USER":
            user = arg
        elif word == "WORKDIR":
            workdir = arg
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(arg)
        elif word == "COPY" and arg.startswith("--from="):
            copy_to = arg.split()[-1]
    if not user or user.split(":")[0] in ("0", "root"):
        fail(f"the runtime stage runs as {user or 'root'}")
    if not entrypoint or not copy_to:
        fail("the runtime stage has no ENTRYPOINT or no COPY --from the build stage")

    binary = Path(args.binary) if args.binary else next(
        (p for p in (ROOT / "target" / "release" / "backtrack", ROOT / "target" / "debug" / "backtrack") if p.exists()),
        None,
    )
    if binary is None or not binary.exists():
        fail("no backtrack binary: build it first (cargo build -p backtrack-cli) or pass --binary")

    rootfs = build_rootfs(base, runs, Path(args.rootfs))
    target = rootfs / copy_to.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    ldd = subprocess.run([CHROOT, str(rootfs), "ldd", copy_to], capture_output=True, text=True)
    missing = [line.strip() for line in ldd.stdout.splitlines() if "not found" in line]
    if ldd.returncode != 0 or missing:
        fail(f"shared libraries missing in the image: {missing or ldd.stderr}")
    print(f"image check: every shared library of {copy_to} is in the image")

    uid, _, gid = user.partition(":")
    base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, **env}
    version = subprocess.run(
        [CHROOT, f"--userspec={uid}:{gid or uid}", str(rootfs), *entrypoint, "--version"],
        capture_output=True, text=True, env=base_env,
    )
    if version.returncode != 0:
        fail(f"{' '.join(entrypoint)} --version: {version.stderr}")
    print(f"image check: {version.stdout.strip()} runs as {user}")

    with tempfile.TemporaryDirectory(prefix="backtrack-image-") as scratch:
        scratch = Path(scratch)
        nats_port, grpc_port, http_port = free_port(), free_port(), free_port()
        nats = subprocess.Popen(
            [args.nats_server, "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", str(scratch / "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        volumes = []
        for path in volume_paths():
            host = scratch / "volumes" / path.strip("/").replace("/", "_")
            host.mkdir(parents=True)
            os.chown(host, int(uid), int(gid or uid))
            (rootfs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            volumes.append((str(host), path.lstrip("/")))
        auth = next(h for h, p in volumes if p.endswith("auth"))
        Path(auth, "signing.key").write_text(os.urandom(32).hex())
        os.chown(Path(auth, "signing.key"), int(uid), int(gid or uid))
        os.chmod(Path(auth, "signing.key"), 0o400)
        serve_env = {
            **base_env,
            "BACKTRACK_NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "BACKTRACK_SIGNING_KEY": "/etc/backtrack/auth/signing.key",
            "BACKTRACK_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "BACKTRACK_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "BACKTRACK_DRAIN_SECS": "5",
        }
        log = open(scratch / "serve.log", "w")
        with mounted(rootfs, [*volumes, ("proc", "proc"), ("/dev", "dev")], read_only_root=True):
            process = subprocess.Popen(
                [CHROOT, f"--userspec={uid}:{gid or uid}", str(rootfs), *entrypoint, "serve", "directory"],
                env=serve_env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.time() + 60
                ready = False
                while time.time() < deadline and process.poll() is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                            ready = r.status == 200
                    except OSError:
                        pass
                    if ready:
                        break
                    time.sleep(0.2)
                if not ready:
                    fail("serve directory did not become ready in the image:\n" + (scratch / "serve.log").read_text())
                served_by = next(
                    (p for p in Path("/proc").iterdir() if p.name.isdigit()
                     and Path(p, "cmdline").exists()
                     and b"serve\x00directory" in Path(p, "cmdline").read_bytes()
                     and Path(p, "root").resolve() == rootfs.resolve()),
                    None,
                )
                uids = Path(served_by, "status").read_text().split("Uid:")[1].split()[:2] if served_by else []
                if not uids or "0" in uids:
                    fail(f"serve directory runs with uids {uids}, not {uid}")
                print(f"image check: serve directory ready on a read-only root as uid {uids[0]}")
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=30)
                if code != 0:
                    fail(f"serve directory exited {code} on SIGTERM:\n" + (scratch / "serve.log").read_text())
                print("image check: SIGTERM drained and exited 0")
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                nats.kill()
                nats.wait()
    print("image check passed")


if __name__ == "__main__":
    main()
