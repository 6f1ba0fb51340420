import type { CommandDocument } from './command-document';

/**
 * Runbook §5B's host document (`<prefix>-Host-MigrateDataVolume`, built like every Command
 * document from `ssm-documents/migrate-data-volume.command.yml` and its script) edits one file
 * outside the data mount: the fstab. The YAML admits only `/etc/fstab`; this narrows the
 * synthesized document to the fstab the stack is configured with, so that whoever may run the
 * document still cannot point the edit at another file. The tests synthesize it with a temp file.
 */

/** The fstab the stack's MigrateDataVolume switches. */
export const FSTAB_FILE = '/etc/fstab';

const FSTAB_PATTERN = /^(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,16}$/;

/** Sets the document's `FstabFile` parameter to accept only `fstabFile` (its default too). */
export function restrictFstabFile(doc: CommandDocument, fstabFile: string = FSTAB_FILE): void {
  if (!FSTAB_PATTERN.test(fstabFile)) {
    throw new Error(
      `restrictFstabFile fstabFile is ${JSON.stringify(fstabFile)}; expected an absolute path of plain names (no "." or ".." segment)`,
    );
  }
  if (doc.content.parameters?.FstabFile === undefined) {
    throw new Error(`restrictFstabFile: ${doc.documentName} has no FstabFile parameter`);
  }
  doc.resource.addPropertyOverride('Content.parameters.FstabFile.default', fstabFile);
  doc.resource.addPropertyOverride('Content.parameters.FstabFile.allowedValues', [fstabFile]);
}
