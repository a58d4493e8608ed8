#!/usr/bin/env python3
"""Checks the shape of the code that the layout promises (README, "Layout"):

  1. no import circle between src/ files: every `crate::`, `super::` and `self::` path in code
     (`use` lines and inline paths alike, comments and strings ignored), and every inline path
     through a name a `use` brought in (`use crate::aws::{self, eks};` then `eks::describe(..)`),
     is resolved to the file that defines it, through `pub use` re-exports; a folder's `mod.rs`
     has the edges of what it re-exports; the file graph must have no cycle;
  2. no file over MAX_FILE_LINES lines, unit tests included, in src/, tests/support/src/ (the
     test kit) and benches/, unless the file's first comment (its opening `//!` lines) says why
     ("Long because"). The test files tests/*.rs themselves are not held to it (several are
     over: one scenario file per feature);
  3. no function over MAX_FN_LINES lines in those same files unless its doc comment says why
     ("Long because").

Prints every finding and exits 1 when there is one. Run by scripts/test.sh with --self-test,
which first proves on a copy of src/ that a planted circle (core/mechanism.rs using
hook::discover, which uses core) is found, and on a copy of the sized folders that a planted
401-line file under tests/support/src is reported (and not once its first comment says why);
by hand: `python3 scripts/check-layout.py [--graph] [--self-test]` (--graph prints the file
graph).
"""

import re
import sys
from pathlib import Path

MAX_FILE_LINES = 400
MAX_FN_LINES = 80
ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# Folders held to the size and function rules (2 and 3), relative to ROOT.
SIZED = ("src", "tests/support/src", "benches")

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text: str) -> str:
    """Code only: comments and string/char literals blanked, line structure kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'r(#*)"', text[i:])
        if m and (i == 0 or not re.match(r"\w", text[i - 1])):
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def expand_aliased(tree: str) -> list:
    """`a::{b, c::{d, e as f}, self}` -> [(a::b, b), (a::c::d, d), (a::c::e, f), (a, a)]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    i = tree.find("{")
    if i < 0:
        m = re.match(r"(.*?)\s+as\s+(" + IDENT + r")$", tree)
        path, alias = (m.group(1), m.group(2)) if m else (tree, None)
        path = path.replace(" ", "")
        return [(path, alias or path.split("::")[-1])]
    prefix = tree[:i].replace(" ", "")
    inner = tree[i + 1 : tree.rindex("}")]
    parts, depth, start = [], 0, 0
    for j, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:j])
            start = j + 1
    parts.append(inner[start:])
    result = []
    for part in parts:
        for path, alias in expand_aliased(part.strip()) if part.strip() else []:
            if path == "self":
                full = prefix.rstrip(":")
                result.append((full, alias if alias != "self" else full.split("::")[-1]))
            else:
                result.append((prefix + path, alias))
    return result


def expand(tree: str) -> list:
    """`a::{b, c::{d, e as f}, self}` -> [a::b, a::c::d, a::c::e, a] (aliases dropped)."""
    return [path for path, _ in expand_aliased(tree)]


class Crate:
    def __init__(self):
        self.files = {}  # module tuple -> (path, code)
        for path in sorted(SRC.rglob("*.rs")):
            if path.name == "main.rs" and path.parent == SRC:
                continue
            self.files[module_of(path)] = (path, strip(path.read_text()))
        self.reexports = {m: self._reexports(m, code) for m, (_, code) in self.files.items()}

    def _reexports(self, module, code):
        named, globs = {}, []
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", code):
            for path in expand(m.group(1)):
                segs = path.split("::")
                alias = None
                absolute = self.absolute(module, segs, in_test=False)
                if absolute is None:
                    continue
                if segs[-1] == "*":
                    globs.append(absolute[:-1])
                else:
                    named[alias or absolute[-1]] = absolute
        return named, globs

    def absolute(self, module, segs, in_test):
        base = list(module) + (["tests"] if in_test else [])
        if segs[0] == "crate":
            return tuple(segs[1:])
        out = list(base)
        rest = list(segs)
        if rest[0] == "self":
            return tuple(out + rest[1:])
        if rest[0] != "super":
            # a path through a child module of this file (`pub use child::X`)
            if tuple(base + [rest[0]]) in self.files:
                return tuple(base + rest)
            return None
        while rest and rest[0] == "super":
            if not out:
                return None
            out.pop()
            rest.pop(0)
        return tuple(out + rest)

    def defines(self, module, name):
        _, code = self.files[module]
        return re.search(
            r"\b(fn|struct|enum|const|static|type|trait|mod|macro_rules!)\s+" + re.escape(name) + r"\b",
            code,
        )

    def resolve(self, path, seen=None):
        """The file (module tuple) that defines `path`."""
        seen = seen or set()
        if path in seen:
            return None
        seen.add(path)
        for k in range(len(path), -1, -1):
            prefix = path[:k]
            if prefix not in self.files:
                continue
            if k == len(path):
                return prefix
            name = path[k]
            if name == "*" or self.defines(prefix, name) and not (prefix + (name,)) in self.files:
                return prefix
            named, globs = self.reexports[prefix]
            if name in named:
                target = named[name] + path[k + 1 :]
                return self.resolve(target, seen) or prefix
            for g in globs:
                target = self.resolve(g + path[k:], seen)
                if target is not None and target != g[: len(target)] or target and self.defines(target, name):
                    return target
            return prefix
        return None

    def edges(self):
        graph = {m: set() for m in self.files}
        # a module re-exports what its `pub use` lines name: it depends on those files
        for module, (named, globs) in self.reexports.items():
            for target in list(named.values()) + list(globs):
                t = self.resolve(target)
                if t is not None and t != module:
                    graph[module].add(t)
        for module, (path, code) in self.files.items():
            test_at = None
            m = re.search(r"\bmod\s+tests\s*\{", code)
            if m:
                test_at = m.start()
            paths = []
            for u in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", code):
                for p in expand(u.group(1)):
                    paths.append((u.start(), p.split("::")))
            for u in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::(?:" + IDENT + r"))+)", code):
                if re.match(r"\s*[,};{]", code[u.end() :]) and re.search(r"\buse\s[^;]*$", code[: u.start()]):
                    continue  # inside a use tree, handled above
                paths.append((u.start(), u.group(1).split("::")))
            # inline paths through a name a `use` brought in: `eks::describe(..)`
            aliases = {}
            for u in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", code):
                for p, alias in expand_aliased(u.group(1)):
                    if alias not in ("crate", "super", "self", "*") and not p.endswith("*"):
                        aliases[alias] = (u.start(), p.split("::"))
            for u in re.finditer(r"(?<![\w:])(" + IDENT + r")((?:::" + IDENT + r")+)", code):
                head = u.group(1)
                if head in aliases and head not in ("crate", "super", "self"):
                    at, base = aliases[head]
                    if re.search(r"\buse\s[^;]*$", code[: u.start()]):
                        continue  # inside a use tree
                    paths.append((at, base + u.group(2).split("::")[1:]))
            for at, segs in paths:
                segs = [s for s in segs if s]
                if segs and segs[-1] == "*":
                    segs = segs[:-1] + ["*"]
                absolute = self.absolute(module, segs, in_test=test_at is not None and at > test_at)
                if not absolute:
                    continue
                target = self.resolve(absolute)
                if target is not None and target != module:
                    graph[module].add(target)
        return graph


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module) or "crate"


def long_functions(path: Path):
    raw = path.read_text().splitlines()
    code = strip(path.read_text()).splitlines()
    found = []
    for i, line in enumerate(code):
        m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?fn\s+(" + IDENT + ")", line)
        if not m:
            continue
        depth, started, end = 0, False, None
        for j in range(i, len(code)):
            for ch in code[j]:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not started and depth == 0:
                    end = j
                    break
            if end is not None or (started and depth == 0):
                end = j
                break
        if end is None or not started:
            continue
        length = end - i + 1
        if length <= MAX_FN_LINES:
            continue
        doc, k = [], i - 1
        while k >= 0 and (raw[k].strip().startswith("///") or raw[k].strip().startswith("#[")):
            doc.append(raw[k])
            k -= 1
        if "long because" in " ".join(doc).lower():
            continue
        found.append((m.group(1), i + 1, length))
    return found


def first_comment(path: Path) -> str:
    """The file's opening `//!` lines (its first comment), joined."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.strip().startswith("//!"):
            break
        lines.append(line.strip()[3:].strip())
    return " ".join(lines)


def sized_files(root: Path):
    """The .rs files under the SIZED folders of `root`."""
    for folder in SIZED:
        yield from sorted((root / folder).rglob("*.rs"))


def size_problems(root: Path):
    """Rules 2 and 3 over the SIZED folders of `root`: (findings, number of files)."""
    problems, files = [], 0
    for path in sized_files(root):
        files += 1
        lines = len(path.read_text().splitlines())
        rel = path.relative_to(root)
        if lines > MAX_FILE_LINES and "long because" not in first_comment(path).lower():
            problems.append(
                f"{rel}: {lines} lines (at most {MAX_FILE_LINES} unless its first `//!` comment says "
                "\"Long because ...\"; split it, or move unit tests to a `tests` submodule file)"
            )
        for fn, at, length in long_functions(path):
            problems.append(f"{rel}:{at}: fn {fn} is {length} lines (at most {MAX_FN_LINES} unless its doc comment says \"Long because ...\")")
    return problems, files


def self_test_sizes():
    """On a copy of the SIZED folders: a planted 401-line file under tests/support/src is
    reported, also when a later comment gives the reason; the same file whose first comment
    says why is not."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for folder in SIZED:
            shutil.copytree(ROOT / folder, copy / folder)
        planted = copy / "tests" / "support" / "src" / "planted.rs"
        body = "".join(f"pub const C{i}: u32 = {i};\n" for i in range(400))
        planted.write_text("//! A planted file, one line too long.\n" + body)
        found = [p for p in size_problems(copy)[0] if p.startswith("tests/support/src/planted.rs: 401 lines")]
        # The reason anywhere but in the first comment does not count.
        planted.write_text("//! A planted file.\n\n/// Long because it is planted.\n" + body)
        elsewhere = [p for p in size_problems(copy)[0] if p.startswith("tests/support/src/planted.rs: 403 lines")]
        planted.write_text("//! A planted file.\n//! Long because it is planted.\n" + body)
        excused = [p for p in size_problems(copy)[0] if "planted.rs" in p]
    if len(found) != 1 or len(elsewhere) != 1 or excused:
        print(
            f"check-layout --self-test: FAILED (planted 401-line file reported: {bool(found)}; reported with its reason "
            f"outside the first comment: {bool(elsewhere)}; reported though its first comment says why: {bool(excused)})"
        )
        return 1
    print(
        "check-layout --self-test: a planted 401-line tests/support/src/planted.rs is reported, also with its reason "
        "outside its first comment, and not once its first comment says why"
    )
    return 0


def self_test():
    """On a copy of src/: the tree as it is has no circle, and with a planted circle (core's
    mechanism.rs using hook::discover, which uses core) one is found. Exits 1 otherwise."""
    import shutil
    import tempfile

    global SRC
    real = SRC
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(real, copy)
        SRC = copy
        try:
            clean = cycles(Crate().edges())
            target = copy / "core" / "mechanism.rs"
            text = target.read_text()
            first_use = text.index("\nuse ") + 1
            target.write_text(text[:first_use] + "use crate::hook::discover::facts_from;\n" + text[first_use:])
            planted = cycles(Crate().edges())
        finally:
            SRC = real
    found = any(("core", "mechanism") in comp and ("hook", "discover") in comp for comp in planted)
    if clean or not found:
        print(f"check-layout --self-test: FAILED (circles in the tree: {clean}; found the planted one: {found})")
        return 1
    print("check-layout --self-test: the planted circle core::mechanism -> hook::discover -> core is found")
    return 0


def main():
    if "--self-test" in sys.argv and (self_test() != 0 or self_test_sizes() != 0):
        return 1
    crate = Crate()
    graph = crate.edges()
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{name(m)} -> {', '.join(sorted(name(t) for t in graph[m]))}")
    problems = []
    for comp in cycles(graph):
        problems.append("import circle between files: " + " <-> ".join(name(m) for m in comp))
        for m in comp:
            inside = sorted(name(t) for t in graph[m] if t in comp)
            problems.append(f"    {name(m)} uses {', '.join(inside)}")
    sized, files = size_problems(ROOT)
    problems += sized
    for p in problems:
        print(p)
    if problems:
        print(f"check-layout: {len(problems)} finding(s) in {files} files")
        return 1
    print(f"check-layout: {files} files ({', '.join(SIZED)}), no import circle, none over {MAX_FILE_LINES} lines, no function over {MAX_FN_LINES} lines without its reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
