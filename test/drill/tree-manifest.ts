import { spawnSync } from 'node:child_process';

/**
 * What "every byte preserved exactly" means for a data directory, as one comparable list: every
 * path below `root` (not `lost+found`), sorted, with its type, permission bits, owner and group,
 * extended attributes (names and values), and
 * - files: size, mtime (ns), link count, whether it is sparse (fewer bytes allocated than its
 *   size), and the SHA-256 of its content, or, for a second name of the same inode, which path it
 *   is a hard link of;
 * - symlinks: target and mtime; directories: mtime; FIFOs and devices: their kind (and rdev).
 * Made by python3 (Node has no xattr API), reading the tree as root.
 */
export interface TreeEntry {
  readonly path: string;
  readonly type: 'file' | 'dir' | 'symlink' | 'fifo' | 'other';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly xattrs: Readonly<Record<string, string>>;
  readonly size?: number;
  readonly mtimeNs?: string;
  readonly nlink?: number;
  readonly sparse?: boolean;
  readonly sha256?: string;
  readonly hardLinkOf?: string;
  readonly target?: string;
}

const MANIFEST_PY = `
import hashlib, json, os, stat, sys
root = sys.argv[1]
entries, first = [], {}
def walk(rel):
    here = os.path.join(root, rel) if rel else root
    with os.scandir(here) as it:
        names = sorted(e.name for e in it)
    for name in names:
        r = os.path.join(rel, name) if rel else name
        if r == 'lost+found':
            continue
        full = os.path.join(root, r)
        st = os.lstat(full)
        e = {'path': r, 'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid}
        try:
            keys = sorted(os.listxattr(full, follow_symlinks=False))
        except OSError:
            keys = []
        e['xattrs'] = {k: os.getxattr(full, k, follow_symlinks=False).hex() for k in keys}
        if stat.S_ISDIR(st.st_mode):
            e.update(type='dir', mtimeNs=str(st.st_mtime_ns))
            entries.append(e)
            walk(r)
            continue
        if stat.S_ISLNK(st.st_mode):
            e.update(type='symlink', target=os.readlink(full), mtimeNs=str(st.st_mtime_ns))
        elif stat.S_ISREG(st.st_mode):
            e.update(type='file', size=st.st_size, mtimeNs=str(st.st_mtime_ns), nlink=st.st_nlink,
                     sparse=st.st_blocks * 512 < st.st_size)
            inode = (st.st_dev, st.st_ino)
            if inode in first:
                e['hardLinkOf'] = first[inode]
            else:
                first[inode] = r
                h = hashlib.sha256()
                with open(full, 'rb') as f:
                    for chunk in iter(lambda: f.read(1 << 20), b''):
                        h.update(chunk)
                e['sha256'] = h.hexdigest()
        elif stat.S_ISFIFO(st.st_mode):
            e['type'] = 'fifo'
        else:
            e.update(type='other', rdev=st.st_rdev)
        entries.append(e)
walk('')
json.dump(entries, sys.stdout)
`;

/** The manifest of the tree at `root` (see {@link TreeEntry}). */
export function treeManifest(root: string): TreeEntry[] {
  const r = spawnSync('python3', ['-c', MANIFEST_PY, root], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`treeManifest ${root}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as TreeEntry[];
}

/** Paths whose entries differ between two manifests (missing on either side included), sorted. */
export function manifestDifferences(a: readonly TreeEntry[], b: readonly TreeEntry[]): string[] {
  const byPath = (m: readonly TreeEntry[]) => new Map(m.map((e) => [e.path, JSON.stringify(e)]));
  const left = byPath(a);
  const right = byPath(b);
  const paths = new Set([...left.keys(), ...right.keys()]);
  return [...paths].filter((p) => left.get(p) !== right.get(p)).sort();
}

/** Files, directories, symlinks, others, hard links, sparse files and content bytes of a manifest. */
export function manifestSummary(m: readonly TreeEntry[]): string {
  const files = m.filter((e) => e.type === 'file');
  const bytes = files.filter((e) => e.hardLinkOf === undefined).reduce((n, e) => n + (e.size ?? 0), 0);
  const count = (type: TreeEntry['type']) => m.filter((e) => e.type === type).length;
  return `${files.length} files (${files.filter((e) => e.hardLinkOf !== undefined).length} hard links, ${files.filter((e) => e.sparse).length} sparse, ${m.filter((e) => Object.keys(e.xattrs).length > 0).length} with xattrs), ${count('dir')} dirs, ${count('symlink')} symlinks, ${count('fifo') + count('other')} other; ${bytes} bytes`;
}
