"""The viewer's state: the catalog of spec files it may show, and each analysed spec kept until
one of its files changes (the check is a stat of each file: cheap enough for every request, so
`--watch` needs no watcher thread; the page asks for the version and reloads when it moves)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from engine.views.viewer import model
from engine.views.viewer.catalog import Catalog

CACHE_SIZE = 32  # analysed specs (with their overrides) kept


class NotFound(Exception):
    """A request named a spec that is not in the viewer's folders."""


class Workspace:
    def __init__(self, catalog: Catalog, watch: bool = False):
        self.catalog, self.watch = catalog, watch
        self.cache: OrderedDict[tuple, tuple[str, model.Loaded]] = OrderedDict()
        self.pages: OrderedDict[tuple, dict] = OrderedDict()
        self.stats_cache: dict[str, tuple[str, set[str], dict]] = {}
        # the compiler and the renderer were written for one caller at a time
        self.lock = threading.RLock()

    def path(self, spec_id: str) -> Path:
        path = self.catalog.path(spec_id)
        if path is None:
            raise NotFound(spec_id)
        return path

    def loaded(self, spec_id: str, overrides: tuple[str, ...] = ()) -> model.Loaded:
        """The spec analysed with `overrides`, again when any file it came from changed."""
        path = self.path(spec_id)
        key = (path, tuple(overrides))
        with self.lock:
            hit = self.cache.get(key)
            if hit is not None and hit[0] == model.version(hit[1].files):
                self.cache.move_to_end(key)
                return hit[1]
            loaded = model.load(path, tuple(overrides))
            self.cache[key] = (model.version(loaded.files), loaded)
            _trim(self.cache)
            return loaded

    def page(self, a: str, b: str | None = None, overrides: tuple = (), overrides_b: tuple = (),
             expand: list[str] | None = None) -> dict:
        """The data of a one-spec page (`b` None) or of the diff of `a` and `b`."""
        for spec_id in (a, b) if b else (a,):
            self.path(spec_id)  # both names checked before either spec is analysed
        with self.lock:
            first = self.loaded(a, overrides)
            second = self.loaded(b, overrides_b) if b else None
            files = first.files | (second.files if second else set())
            key = (a, b, overrides, overrides_b, None if expand is None else tuple(sorted(expand)),
                   model.version(files))
            if key not in self.pages:
                self.pages[key] = (model.spec_page(first, a, expand) if second is None else
                                   model.diff_page(first, second, (a, b), expand))
                _trim(self.pages)
            page = dict(self.pages[key])
            page["watch"] = self.watch
            return page

    def version(self, a: str, b: str | None = None, overrides: tuple = (),
                overrides_b: tuple = ()) -> str:
        files = set(self.loaded(a, overrides).files)
        if b:
            files |= self.loaded(b, overrides_b).files
        return model.version(files)

    def stats(self, spec_id: str) -> dict:
        """Parameters and MACs for the index, kept apart from the analysed specs: the index asks
        for every bundled spec, which would push the open pages' specs out of the cache."""
        with self.lock:
            hit = self.stats_cache.get(spec_id)
            if hit is not None and hit[0] == model.version(hit[1]):
                return hit[2]
            loaded = model.load(self.path(spec_id))
            self.stats_cache[spec_id] = (model.version(loaded.files), loaded.files,
                                         model.stats(loaded))
            return self.stats_cache[spec_id][2]

    def index(self) -> dict:
        return {"kind": "index", "watch": False,
                "entries": [{"id": e.id, "name": e.path.stem, "family": e.family,
                             "summary": e.summary} for e in self.catalog.entries()]}


def _trim(cache: OrderedDict) -> None:
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
