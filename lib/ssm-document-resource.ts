import { readFileSync } from 'node:fs';
import { Stack } from 'aws-cdk-lib';
import { CfnDocument } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DOCUMENT_NAME_PATTERN, PREFIX_PATTERN } from '../contracts/deployment';

/**
 * What an {@link AutomationDocument} and a {@link CommandDocument} share: their error's shape,
 * the rules for the `prefix` and `name` props, and a base class for the construct.
 */

/**
 * A definition (or, for a Command document, its script) that breaks the rules; `problems` names
 * each. Each document construct throws its own subclass, whose class name is the error's `name`.
 */
export class DocumentDefinitionError extends Error {
  constructor(
    message: string,
    readonly problems: readonly string[],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A document's source file (`definitionFile` or `scriptFile`) read and handed to `parse`, or
 * `fail(message)` thrown with a message that names the prop, the path and what went wrong.
 */
export function readSourceFile<T>(
  prop: 'definitionFile' | 'scriptFile',
  path: string,
  parse: (text: string) => T,
  fail: (message: string) => DocumentDefinitionError,
): T {
  try {
    return parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw fail(`${prop} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Throws, naming the construct and the prop, when `prefix` is not a deployment prefix (or starts
 * with aws/amazon/amzn, which SSM reserves) or `name` is not a PascalCase document name.
 */
export function checkDocumentNaming(
  construct: string,
  props: { readonly prefix: string; readonly name: string },
) {
  if (!PREFIX_PATTERN.test(props.prefix) || /^(aws|amazon|amzn)/i.test(props.prefix)) {
    throw new Error(
      `${construct} prefix ${JSON.stringify(props.prefix)} is invalid: expected ${PREFIX_PATTERN} not starting with aws/amazon/amzn`,
    );
  }
  if (!DOCUMENT_NAME_PATTERN.test(props.name)) {
    throw new Error(
      `${construct} name ${JSON.stringify(props.name)} is invalid: expected PascalCase matching ${DOCUMENT_NAME_PATTERN}`,
    );
  }
}

/**
 * An SSM document construct: a `CfnDocument` (id `Resource`) named `documentName`, with JSON
 * content, which must be an object, and `updateMethod: 'NewVersion'`, without which an update of a
 * named document fails. {@link AutomationDocument} and {@link CommandDocument} extend it.
 */
export abstract class SsmDocument<Content extends object> extends Construct {
  /** The deployed document's name (each subclass says how it is formed). */
  public readonly documentName: string;
  /** `arn:<partition>:ssm:<region>:<account>:document/<documentName>` (for StartAutomationExecution and SendCommand policies). */
  public readonly documentArn: string;
  /** The content as synthesized, for tests and other constructs. */
  public readonly content: Content;
  public readonly resource: CfnDocument;

  protected constructor(
    scope: Construct,
    id: string,
    documentType: 'Automation' | 'Command',
    documentName: string,
    content: Content,
  ) {
    super(scope, id);
    this.documentName = documentName;
    this.content = content;
    this.resource = new CfnDocument(this, 'Resource', {
      name: documentName,
      documentType,
      documentFormat: 'JSON',
      content,
      updateMethod: 'NewVersion',
    });
    this.documentArn = Stack.of(this).formatArn({
      service: 'ssm',
      resource: 'document',
      resourceName: documentName,
    });
  }
}
