#!/usr/bin/env node
// npx stemedb-capacity: runs bin/stemedb-capacity.ts with tsx (a dependency of this repository).
require('tsx/cjs');
require('./stemedb-capacity.ts');
