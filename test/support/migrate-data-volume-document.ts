import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CommandDocument, type CommandDocumentContent } from '../../lib/command-document';
import { restrictFstabFile } from '../../lib/migrate-data-volume';

/**
 * The `StemeDB-Host-MigrateDataVolume` Command document as the stack synthesizes it, with its
 * FstabFile parameter restricted to `fstabFile` (the stack restricts it to /etc/fstab): what
 * test/migrate-data-volume.command.test.ts and bench/migrate-data-volume.ts run.
 */
export function synthesizeMigrateDataVolume(fstabFile: string): CommandDocumentContent {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'MigrateDataVolumeTest');
  restrictFstabFile(
    new CommandDocument(stack, 'Migrate', { prefix: 'StemeDB', name: 'MigrateDataVolume' }),
    fstabFile,
  );
  const docs = Template.fromStack(stack).findResources('AWS::SSM::Document');
  const [doc] = Object.values(docs) as Array<{ Properties: { Content: CommandDocumentContent } }>;
  if (doc === undefined) throw new Error('no MigrateDataVolume document synthesized');
  return doc.Properties.Content;
}
