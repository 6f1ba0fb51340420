import type { Construct } from 'constructs';
import { SECTION_LAMBDAS, type SectionLambdaName } from '../contracts/sections';
import type { StemeDbConfig } from './config';
import { ExpandVolumeFunction } from './expand-volume-function';
import type { RemediationFunction } from './remediation-function';
import { VerifyArchiveFunction } from './verify-archive-function';
import { WaitForModificationFunction } from './wait-for-modification-function';
import type { WalArchiveBucket } from './wal-archive-bucket';

/** What the sections' Lambdas are built from. */
export interface SectionFunctionsProps {
  /** The validated configuration (each function takes the keys it needs). */
  readonly config: Pick<StemeDbConfig, 'prefix' | 'expansion' | 'thresholds'>;
  /** The WAL archive (verify-archive reads it and writes its verified manifests). */
  readonly archive: WalArchiveBucket;
}

/** How one section Lambda is built. */
interface SectionFunctionSpec {
  /**
   * Its construct ID (which its logical IDs derive from) and the name the Automation YAML knows
   * it by: `${<id>FunctionName}`.
   */
  readonly id: string;
  readonly build: (scope: Construct, id: string, props: SectionFunctionsProps) => RemediationFunction;
}

/**
 * The construct of each Lambda the section registry names (contracts/sections.ts). A Lambda named
 * there with no entry here does not compile.
 */
const SECTION_FUNCTIONS: Readonly<Record<SectionLambdaName, SectionFunctionSpec>> = {
  'expand-volume': {
    id: 'ExpandVolume',
    build: (scope, id, { config }) =>
      new ExpandVolumeFunction(scope, id, {
        prefix: config.prefix,
        expansion: config.expansion,
        warningFreePercent: config.thresholds.warningFreePercent,
      }),
  },
  'wait-for-volume-modification': {
    id: 'WaitForModification',
    build: (scope, id, { config }) => new WaitForModificationFunction(scope, id, { prefix: config.prefix }),
  },
  'verify-archive': {
    id: 'VerifyArchive',
    build: (scope, id, { config, archive }) =>
      new VerifyArchiveFunction(scope, id, { prefix: config.prefix, archive }),
  },
};

/** The sections' Lambdas by handler name, in registry order. */
export type SectionFunctions = Readonly<Record<SectionLambdaName, RemediationFunction>>;

/**
 * Builds every Lambda of every section in `scope`, in registry order, each with its own role and
 * the grants it needs (in its construct). The functions are direct children of `scope` under
 * their historical IDs (`ExpandVolume`, `WaitForModification`, `VerifyArchive`), so their logical
 * IDs and construct paths stay those of the deployed stack.
 */
export function buildSectionFunctions(scope: Construct, props: SectionFunctionsProps): SectionFunctions {
  const functions = {} as Record<SectionLambdaName, RemediationFunction>;
  for (const name of SECTION_LAMBDAS) {
    const spec = SECTION_FUNCTIONS[name];
    functions[name] = spec.build(scope, spec.id, props);
  }
  return functions;
}

/** The Automation YAML placeholder each section Lambda's name fills: `${<id>FunctionName}`. */
export function functionNameSubstitutions(functions: SectionFunctions): Record<string, string> {
  return Object.fromEntries(
    SECTION_LAMBDAS.map((name) => [
      `${SECTION_FUNCTIONS[name].id}FunctionName`,
      functions[name].function.functionName,
    ]),
  );
}
