import type { CommandDocumentContent } from '../../lib/command-document';
import { restrictFstabFile } from '../../lib/migrate-data-volume';
import { synthesizeCommandDocument } from './command-document-runner';

/**
 * The `StemeDB-Host-MigrateDataVolume` Command document as the stack synthesizes it, with its
 * FstabFile parameter restricted to `fstabFile` (the stack restricts it to /etc/fstab): what
 * test/migrate-data-volume.command.test.ts and bench/migrate-data-volume.ts run.
 */
export function synthesizeMigrateDataVolume(fstabFile: string): CommandDocumentContent {
  return synthesizeCommandDocument('MigrateDataVolume', {}, (doc) => restrictFstabFile(doc, fstabFile));
}
