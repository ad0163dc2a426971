"""Driver-side file operations on the lake through Hadoop's FileSystem (the one Spark uses),
so the same code runs on a local path, file://, s3a:// or abfss:// (whatever the cluster's
Hadoop configuration can reach). A local lake is handled by Python's own calls instead
(LocalLakeFS, same interface): publishing a backfill renames one file per date partition,
thousands of them, and each Hadoop call through py4j costs milliseconds."""

from __future__ import annotations

import json


def uri(path) -> str:
    s = str(path)
    return s if "://" in s else "file://" + __import__("os").path.abspath(s)


def LakeFS(spark, root):
    """The lake's file operations: local ones for a local lake, Hadoop's otherwise."""
    u = uri(root)
    return LocalLakeFS(u) if u.startswith("file:") else HadoopLakeFS(spark, u)


def _require_root(root: str, exists: bool, is_dir: bool) -> None:
    from export.lake.spark import LakeError
    if not exists:
        raise LakeError(f"lake {root}: no such directory (nothing ingested there yet?)")
    if not is_dir:
        raise LakeError(f"lake {root}: not a directory")


class LocalLakeFS:
    def __init__(self, root_uri: str):
        import os
        from pathlib import Path
        self._os, self._Path = os, Path
        self.root = root_uri.rstrip("/")
        self.base = Path("/" + root_uri.split(":", 1)[1].lstrip("/"))

    def abs(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def require_root(self) -> None:
        _require_root(self.root, self.base.exists(), self.base.is_dir())

    def _p(self, rel: str):
        return self.base / rel

    def glob(self, rel_pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.base)) for p in self.base.glob(rel_pattern)
                      if p.is_file() and not p.name.startswith("."))

    def dirs(self, rel: str) -> list[str]:
        p = self._p(rel)
        return sorted(d.name for d in p.iterdir() if d.is_dir()) if p.is_dir() else []

    def exists(self, rel: str) -> bool:
        return self._p(rel).exists()

    def mtime_s(self, rel: str) -> float:
        return self._p(rel).stat().st_mtime

    def rename(self, src_rel: str, dst_rel: str) -> bool:
        src, dst = self._p(src_rel), self._p(dst_rel)
        if dst.exists() or not src.exists():
            return False
        dst.parent.mkdir(parents=True, exist_ok=True)
        self._os.rename(src, dst)
        return True

    def delete(self, rel: str, recursive: bool = False) -> bool:
        import shutil
        p = self._p(rel)
        if p.is_dir():
            if recursive:
                shutil.rmtree(p)
            else:
                p.rmdir()
            return True
        if p.exists():
            p.unlink()
            return True
        return False

    def write_json_atomic(self, rel: str, obj) -> None:
        p = self._p(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(".tmp-" + p.name)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, sort_keys=True)
            fh.flush()
            self._os.fsync(fh.fileno())
        self._os.replace(tmp, p)
        fd = self._os.open(p.parent, self._os.O_RDONLY)
        try:
            self._os.fsync(fd)
        finally:
            self._os.close(fd)

    def read_json(self, rel: str):
        return json.loads(self._p(rel).read_text(encoding="utf-8"))

    def sync(self) -> None:
        """Make the renames of a publish durable (directory entries)."""
        self._os.sync()


class HadoopLakeFS:
    def __init__(self, spark, root):
        self.jvm = spark.sparkContext._jvm
        self.conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.root = uri(root).rstrip("/")
        self.fs = self._path(self.root).getFileSystem(self.conf)

    def _path(self, p: str):
        return self.jvm.org.apache.hadoop.fs.Path(p)

    def abs(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def require_root(self) -> None:
        p = self._path(self.root)
        exists = bool(self.fs.exists(p))
        _require_root(self.root, exists, exists and bool(self.fs.getFileStatus(p).isDirectory()))

    def rel(self, full: str) -> str:
        full = str(full)
        i = full.find(self.root.split("://", 1)[1])
        return full[i + len(self.root.split("://", 1)[1]) + 1:] if i >= 0 else full

    def glob(self, rel_pattern: str) -> list[str]:
        st = self.fs.globStatus(self._path(self.abs(rel_pattern)))
        return sorted(self.rel(s.getPath().toString()) for s in (st or []) if s.isFile())

    def dirs(self, rel: str) -> list[str]:
        """Names of the sub-directories of rel (none if it does not exist)."""
        p = self._path(self.abs(rel))
        if not self.fs.exists(p):
            return []
        return sorted(s.getPath().getName() for s in self.fs.listStatus(p) if s.isDirectory())

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._path(self.abs(rel))))

    def mtime_s(self, rel: str) -> float:
        return self.fs.getFileStatus(self._path(self.abs(rel))).getModificationTime() / 1000.0

    def rename(self, src_rel: str, dst_rel: str) -> bool:
        dst = self._path(self.abs(dst_rel))
        self.fs.mkdirs(dst.getParent())
        return bool(self.fs.rename(self._path(self.abs(src_rel)), dst))

    def delete(self, rel: str, recursive: bool = False) -> bool:
        return bool(self.fs.delete(self._path(self.abs(rel)), recursive))

    def write_json_atomic(self, rel: str, obj) -> None:
        """Write under a hidden name, then rename into place: readers see all of it or nothing."""
        parent, name = rel.rsplit("/", 1)
        tmp = f"{parent}/.tmp-{name}"
        out = self.fs.create(self._path(self.abs(tmp)), True)
        try:
            out.write(bytearray(json.dumps(obj, sort_keys=True).encode()))
            out.hsync()
        finally:
            out.close()
        self.delete(rel)
        if not self.rename(tmp, rel):
            raise OSError(f"cannot rename {tmp} -> {rel}")

    def sync(self) -> None:
        pass

    def read_json(self, rel: str):
        stream = self.fs.open(self._path(self.abs(rel)))
        try:
            data = self.jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        return json.loads(bytes(data).decode())
