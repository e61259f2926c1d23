"""`tvix-store verify`: scrub every backend and check that every PathInfo's closure is
complete (its directories all present and valid, every file's blob present)."""

from __future__ import annotations

import math

from pytvix.castore.blobservice import BlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.directoryservice.graph import ClosureError, RootToLeavesValidator
from pytvix.castore.errors import CastoreError
from pytvix.castore.nodes import DirectoryNode, FileNode
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import Scrubbable, ScrubReport
from pytvix.nixcompat.nixhash import HashAlgo, NixHash
from pytvix.store.composition import StoreServices
from pytvix.store.gc.collector import collectables
from pytvix.store.nar_calculation import SimpleRenderer
from pytvix.store.path_info import PathInfo


async def verify_store(
    services: StoreServices, progress: Progress, *, check_nar: bool = False
) -> ScrubReport:
    """Scrub every backend and check every closure; with `check_nar`, also render every
    store path's NAR and compare its hash and size with the stored ones."""
    report = ScrubReport()
    for label, service in (
        ("blob service", services.blob),
        ("directory service", services.directory),
        ("path info service", services.path_info),
    ):
        if isinstance(service, Scrubbable):
            await service.scrub(report, progress)
        else:
            report.unsupported.append(f"{label} ({type(service).__name__}) cannot be scrubbed")
    checker = ClosureChecker(services.blob, services.directory, report)
    calculator = SimpleRenderer(services.blob, services.directory) if check_nar else None
    try:
        async for info in services.path_info.list():
            await checker.check(info)
            if calculator is not None:
                await _check_nar(info, calculator, report)
            progress("path infos checked", 1)
    except CastoreError as e:
        report.problem(f"listing path infos failed: {e}")
    return report


async def _check_nar(info: PathInfo, calculator: SimpleRenderer, report: ScrubReport) -> None:
    where = info.store_path.to_absolute_path()
    if where in report.affected:
        return  # its data is damaged: said already
    try:
        size, sha256 = await calculator.calculate_nar(info.node)
    except CastoreError as e:
        report.problem(f"{where}: cannot render its NAR: {e}")
        return
    if (size, sha256) != (info.nar_size, info.nar_sha256):
        stored = NixHash(HashAlgo.SHA256, info.nar_sha256).to_nix_base32_str()
        actual = NixHash(HashAlgo.SHA256, sha256).to_nix_base32_str()
        report.problem(
            f"{where}: its NAR is {size} bytes {actual}, the path info says "
            f"{info.nar_size} bytes {stored}"
        )
    else:
        report.ok("NAR hashes")


class ClosureChecker:
    """Checks PathInfo closures, remembering what was already found complete."""

    def __init__(self, blobs: BlobService, dirs: DirectoryService, report: ScrubReport) -> None:
        self.blobs = blobs
        self.dirs = dirs
        self.report = report
        self.complete_dirs: set[B3Digest] = set()
        self.present_blobs: set[B3Digest] = set()

    async def check(self, info: PathInfo) -> None:
        where = info.store_path.to_absolute_path()
        try:
            node = info.node
            if isinstance(node, FileNode):
                await self._blob(where, node)
            elif isinstance(node, DirectoryNode):
                await self._closure(where, node.digest)
        except (CastoreError, ClosureError) as e:
            self.report.problem(f"{where}: {e}")
            return
        if where not in self.report.affected:
            self.report.ok("closures")

    async def _blob(self, where: str, node: FileNode) -> None:
        if node.digest in self.report.damaged_blobs:
            if where not in self.report.affected:
                self.report.affected.append(where)
            return
        if node.digest in self.present_blobs:
            return
        if not await self.blobs.has(node.digest):
            raise ClosureError(f"blob {node.digest} ({node.size} bytes) is missing")
        self.present_blobs.add(node.digest)

    async def _closure(self, where: str, root: B3Digest) -> None:
        if root in self.complete_dirs:
            return
        validator = RootToLeavesValidator(root)
        seen = []
        async for directory in self.dirs.get_recursive(root):
            validator.add(directory)
            seen.append(directory.digest())
            for _, file in directory.files():
                await self._blob(where, file)
        if not seen:
            raise ClosureError(f"root directory {root} is missing")
        validator.finalize()
        self.complete_dirs.update(seen)


REPAIR_PASSES = 3  # object stores move objects to a trash first: a second pass removes them


async def remove_damaged(blobs: BlobService, damaged: set[B3Digest]) -> int:
    """Delete the stored objects of damaged blobs for good, so that the next write of those
    blobs (an import or copy of the paths they break) stores them afresh instead of finding
    them present; returns how many objects went (GcUnsupported if the blob service cannot
    delete objects)."""
    targets = collectables(blobs)
    removed = 0
    for _ in range(REPAIR_PASSES):
        found = 0
        for target in targets:
            doomed = [obj async for obj in target.gc_objects() if obj.digest in damaged]
            found += len(doomed)
            removed += len(await target.gc_delete(doomed, math.inf))
        if not found:
            break
    return removed
