import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { finishChanges } from '../file-changes.ts';
import { SendDumpParser, tokenize, unescapePath } from './send-dump.ts';

const T = 'atime=2026-11-25T19:10:36+0000 mtime=2026-11-25T19:10:36+0000 ctime=2026-11-25T19:10:36+0000';

/** Captured from btrfs-progs 6.2 for: modify, delete, move (file and directory), replace by
 * move-over, chmod, nested new directories, rm -r, names with a space, a quote and a tab. */
const DUMP = `snapshot        ./c2                            uuid=275b7fa8 transid=8 parent_uuid=b3bb076b parent_transid=7
rename          ./c2/__default__/dir            dest=./c2/__default__/dir2
unlink          ./c2/__default__/keep
update_extent   ./c2/__default__/mod            offset=0 len=5
utimes          ./c2/__default__/mod            ${T}
unlink          ./c2/__default__/del
link            ./c2/__default__/renamed        dest=__default__/ren
unlink          ./c2/__default__/ren
utimes          ./c2/__default__/renamed        ${T}
chmod           ./c2/__default__/sp\\ ace        mode=600
utimes          ./c2/__default__/sp\\ ace        ${T}
rename          ./c2/__default__/rmd            dest=./c2/o267-7-0
unlink          ./c2/o267-7-0/z
rmdir           ./c2/o267-7-0
mkfile          ./c2/o269-8-0
rename          ./c2/o269-8-0                   dest=./c2/__default__/new
update_extent   ./c2/__default__/new            offset=0 len=2
chown           ./c2/__default__/new            gid=0 uid=0
mkdir           ./c2/o270-8-0
rename          ./c2/o270-8-0                   dest=./c2/__default__/n1
chmod           ./c2/__default__/n1             mode=755
mkdir           ./c2/o271-8-0
rename          ./c2/o271-8-0                   dest=./c2/__default__/n1/n2
mkfile          ./c2/o272-8-0
rename          ./c2/o272-8-0                   dest=./c2/__default__/n1/n2/q
update_extent   ./c2/__default__/n1/n2/q        offset=0 len=2
mkfile          ./c2/o273-8-0
rename          ./c2/o273-8-0                   dest=./c2/__default__/dir2/sub/g
mkfile          ./c2/o274-8-0
rename          ./c2/o274-8-0                   dest=./c2/dotmesh.metadata/c2.json
mkfile          ./c2/o275-8-0
rename          ./c2/o275-8-0                   dest=./c2/__default__/we"ird\\ttab
mkfile          ./c2/o276-8-0
rename          ./c2/o276-8-0                   dest=./c2/__default__/keep
update_extent   ./c2/__default__/keep           offset=0 len=3
utimes          ./c2/__default__                ${T}
utimes          ./c2/__default__/dir2           ${T}`;

const parse = (text: string) => {
  const p = new SendDumpParser();
  for (const line of text.split('\n')) p.feed(line);
  return p.finish();
};
const show = (text: string) =>
  finishChanges(parse(text).changes).map((c) =>
    c.to === undefined ? `${c.change} ${c.filename}` : `R ${c.filename} -> ${c.to}`,
  );

describe('btrfs send --no-data dump parser', () => {
  test('a captured stream becomes the changes a user made, without temporary names', () => {
    assert.deepEqual(show(DUMP), [
      '- __default__/del',
      'R __default__/dir -> __default__/dir2',
      '+ __default__/dir2/sub/g',
      'M __default__/keep',
      'M __default__/mod',
      '+ __default__/n1',
      '+ __default__/n1/n2',
      '+ __default__/n1/n2/q',
      '+ __default__/new',
      'R __default__/ren -> __default__/renamed',
      '- __default__/rmd',
      '- __default__/rmd/z',
      'M __default__/sp ace',
      '+ __default__/we"ird\ttab',
    ]);
    assert.equal(parse(DUMP).operations, 36);
  });

  test('no operation besides the header: identical states; utimes alone: no change but an operation', () => {
    assert.deepEqual(parse('snapshot ./c3 uuid=x transid=8 parent_uuid=y parent_transid=8'), { changes: [], operations: 0 });
    const touched = parse(`snapshot ./c4 uuid=x transid=9\nutimes ./c4/f ${T}`);
    assert.deepEqual(touched, { changes: [], operations: 1 });
  });

  test('hard link stays +, a swap of two names is two moves, a file moved into a moved directory', () => {
    assert.deepEqual(show(`snapshot ./s uuid=x\nlink ./s/hl dest=mod\nutimes ./s/mod ${T}`), ['+ hl']);
    assert.deepEqual(
      show('snapshot ./s uuid=x\nrename ./s/a dest=./s/o257-5-0\nrename ./s/b dest=./s/a\nrename ./s/o257-5-0 dest=./s/b'),
      ['R a -> b', 'R b -> a'],
    );
    assert.deepEqual(
      show('snapshot ./s uuid=x\nupdate_extent ./s/d/x offset=0 len=1\nrename ./s/d dest=./s/e\nrename ./s/e/y dest=./s/e/z'),
      ['R d -> e', 'R d/y -> e/z', 'M e/x'],
    );
  });

  test('escapes: spaces, backslashes, tabs and octal bytes (UTF-8)', () => {
    assert.deepEqual(tokenize('rename   ./s/a\\ b   dest=./s/c\\\\ d'), ['rename', './s/a\\ b', 'dest=./s/c\\\\', 'd']);
    assert.equal(unescapePath('a\\ b\\tc\\\\d\\303\\251'), 'a b\tc\\dé');
    assert.throws(() => new SendDumpParser().feed('garbage'));
  });
});
