// `zeroLatency.*` settings → the server's `initializationOptions`, and the server command line.
// No `vscode` import: the extension passes a lookup over WorkspaceConfiguration.inspect().
import { parse as parseJsonc } from 'jsonc-parser';

/** What WorkspaceConfiguration.inspect() says about one key (only the fields used here). */
export interface InspectedValue {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** Looks a key up relative to the `zeroLatency` section, e.g. `store.path`. */
export type Inspect = (key: string) => InspectedValue | undefined;

type Kind = 'string' | 'integer' | 'boolean' | 'strings';

/**
 * Settings (under `zeroLatency.`) that decide what runs or where text goes. A repository cannot
 * choose them: package.json declares them `machine` scope, and only the user's own value
 * (inspect().globalValue: User settings, or the Remote/machine settings of a remote window) is
 * read. A workspace that sets one gets a warning naming it (ignoredWorkspaceSettings).
 */
export const MACHINE_SETTINGS: readonly string[] = [
  'server.path',
  'server.args',
  'store.url',
  'store.apiKey',
  'store.path',
  'device',
];

/** Setting (under `zeroLatency.`) → initializationOptions key, as the server spells it. */
export const INIT_OPTION_SETTINGS: ReadonlyArray<{ setting: string; option: string; kind: Kind }> = [
  { setting: 'model', option: 'model', kind: 'string' },
  { setting: 'device', option: 'device', kind: 'string' },
  { setting: 'store.path', option: 'storePath', kind: 'string' },
  { setting: 'store.url', option: 'storeUrl', kind: 'string' },
  { setting: 'store.apiKey', option: 'storeApiKey', kind: 'string' },
  { setting: 'include', option: 'include', kind: 'strings' },
  { setting: 'exclude', option: 'exclude', kind: 'strings' },
  { setting: 'maxFileBytes', option: 'maxFileBytes', kind: 'integer' },
  { setting: 'chunkTokens', option: 'chunkTokens', kind: 'integer' },
  { setting: 'chunkOverlap', option: 'chunkOverlap', kind: 'integer' },
  { setting: 'followSymlinks', option: 'followSymlinks', kind: 'boolean' },
  { setting: 'respectGitignore', option: 'respectGitignore', kind: 'boolean' },
  { setting: 'debounceMs', option: 'debounceMs', kind: 'integer' },
];

export type OptionValue = string | number | boolean | string[];

/**
 * What the server gets in `initialize`: the top-level keys are the user's own configuration (the
 * client vouches for them); `workspaceSettings` holds what the workspace's settings
 * (`.vscode/settings.json`, a `.code-workspace` file) set, which the server treats like the
 * workspace's `.zero-latency.toml` (protocol/spec.md).
 */
export interface InitializationOptions {
  [option: string]: OptionValue | Record<string, OptionValue> | undefined;
  workspaceSettings?: Record<string, OptionValue>;
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** The user's own value for a key (User, or Remote/machine, settings); defaults do not count,
 * and neither does anything a workspace sets. */
export function userValue(inspected: InspectedValue | undefined): unknown {
  return present(inspected?.globalValue) ? inspected?.globalValue : undefined;
}

/** The value the workspace sets for a key (its folder's, else the workspace's), if any. */
export function workspaceLevelValue(inspected: InspectedValue | undefined): unknown {
  if (inspected === undefined) {
    return undefined;
  }
  for (const value of [inspected.workspaceFolderValue, inspected.workspaceValue]) {
    if (present(value)) {
      return value;
    }
  }
  return undefined;
}

/** Empty strings mean "not set" (the settings UI leaves them). */
function isUnset(kind: Kind, value: unknown): boolean {
  return value === undefined || (kind === 'string' && typeof value === 'string' && value.trim() === '');
}

/**
 * initializationOptions with only the keys set, so the server's own defaults and its config
 * files (`.zero-latency.toml`) stay in charge of everything else: the user's values top-level,
 * the workspace's in `workspaceSettings` (sent as they are: the server applies them after the
 * user's, with its own rules for where-text-goes keys). Machine settings never come from the
 * workspace. A value of the wrong type is passed through unchanged: the server's error names
 * the key, which is clearer than a client that silently drops it.
 */
export function buildInitializationOptions(inspect: Inspect): InitializationOptions {
  const options: InitializationOptions = {};
  const workspace: Record<string, OptionValue> = {};
  for (const { setting, option, kind } of INIT_OPTION_SETTINGS) {
    const inspected = inspect(setting);
    const user = userValue(inspected);
    if (!isUnset(kind, user)) {
      options[option] = user as OptionValue;
    }
    if (MACHINE_SETTINGS.includes(setting)) {
      continue;
    }
    const fromWorkspace = workspaceLevelValue(inspected);
    if (!isUnset(kind, fromWorkspace)) {
      workspace[option] = fromWorkspace as OptionValue;
    }
  }
  if (Object.keys(workspace).length > 0) {
    options.workspaceSettings = workspace;
  }
  return options;
}

/**
 * The machine settings (`zeroLatency.`-prefixed) that a settings file sets: a folder's
 * `.vscode/settings.json` (`inSettingsKey` false) or a `.code-workspace` file (its "settings"
 * object). JSON with comments and trailing commas, as VS Code reads them; keys may be dotted or
 * nested. Unreadable text gives none.
 */
export function machineSettingsIn(text: string, inSettingsKey: boolean): string[] {
  let root: unknown = parseJsonc(text, [], { allowTrailingComma: true, disallowComments: false });
  if (inSettingsKey) {
    root = isPlainObject(root) ? root.settings : undefined;
  }
  const found = new Set<string>();
  const wanted = new Set(MACHINE_SETTINGS.map((s) => `zeroLatency.${s}`));
  const visit = (value: unknown, prefix: string): void => {
    if (!isPlainObject(value)) {
      return;
    }
    for (const [key, child] of Object.entries(value)) {
      if (prefix === '' && key.startsWith('[')) {
        continue; // a language override ("[markdown]": {...}): machine settings do not apply there
      }
      const full = prefix === '' ? key : `${prefix}.${key}`;
      if (wanted.has(full)) {
        if (present(child)) {
          found.add(full);
        }
      } else {
        visit(child, full);
      }
    }
  };
  visit(root, '');
  return MACHINE_SETTINGS.map((s) => `zeroLatency.${s}`).filter((key) => found.has(key));
}

/** The machine settings that VS Code itself reports a workspace value for (in case a future
 * VS Code, or an older one, passes them through). */
export function machineSettingsInspected(inspect: Inspect): string[] {
  return MACHINE_SETTINGS.filter((s) => present(workspaceLevelValue(inspect(s)))).map((s) => `zeroLatency.${s}`);
}

/** The warning for a workspace that sets machine settings: which are ignored, and where the
 * user puts them to apply them. */
export function ignoredSettingsMessage(keys: readonly string[], remoteName: string | undefined): string {
  const where = remoteName !== undefined && remoteName !== ''
    ? 'your Remote settings (this is a remote window: "Preferences: Open Remote Settings")'
    : 'your User settings';
  const list = keys.join(', ');
  return (
    `Zero-Latency: this workspace's settings set ${list}, which decide what runs or where your text goes; ` +
    `a workspace cannot choose them, so ${keys.length === 1 ? 'it is' : 'they are'} ignored. ` +
    `To use ${keys.length === 1 ? 'this value' : 'these values'}, set ${keys.length === 1 ? 'it' : 'them'} in ${where}.`
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keys that change what the server is started with (a change restarts it). */
export function affectsServer(changed: (section: string) => boolean): boolean {
  return (
    changed('zeroLatency.server') ||
    INIT_OPTION_SETTINGS.some(({ setting }) => changed(`zeroLatency.${setting}`))
  );
}

export const DEFAULT_SERVER_PATH = 'zl';
export const DEFAULT_SERVER_ARGS: readonly string[] = ['serve'];
export const INSTALL_COMMAND = "pip install '/path/to/your/zero-latency-clone[offline]'";

export interface ServerCommand {
  command: string;
  args: string[];
}

/** The command line from `zeroLatency.server.path` / `.args` (blank or invalid: defaults). */
export function serverCommand(path: unknown, args: unknown): ServerCommand {
  const command = typeof path === 'string' && path.trim() !== '' ? path.trim() : DEFAULT_SERVER_PATH;
  const argv = Array.isArray(args) && args.every((a): a is string => typeof a === 'string')
    ? args
    : [...DEFAULT_SERVER_ARGS];
  return { command, args: argv };
}

export function relativeServerPathMessage(command: string): string {
  return (
    `Zero-Latency: "zeroLatency.server.path" is the relative path "${command}", which is not run: ` +
    'it must be an absolute path (or one starting with ~/), or a bare command name looked up on PATH ' +
    '(for a virtual environment: <venv>/bin/zl, in full).'
  );
}

export function missingServerMessage(command: string): string {
  return (
    `Zero-Latency: the search server "${command}" was not found. ` +
    `Install it with \`${INSTALL_COMMAND}\` (in the Python environment VS Code sees), ` +
    'or set "zeroLatency.server.path" to the full path of its `zl` executable ' +
    '(for a virtual environment: <venv>/bin/zl).'
  );
}

export interface SettingsCommand {
  command: string;
  /** An options object: openRemoteSettings ignores a plain query string. */
  args: [{ query: string }];
}

/** The settings search that shows `zeroLatency.server.*`. */
export const SERVER_SETTINGS_QUERY = 'zeroLatency.server';
/** The settings search that shows every `zeroLatency.*` setting. */
export const SETTINGS_QUERY = 'zeroLatency';

/**
 * Where "Open Settings" must go to show `zeroLatency.server.path` / `.args`. They are
 * machine scope: in a remote window (code-server, SSH, WSL, containers; `remoteName` set)
 * the User tab does not list them and the Remote (machine) tab does; locally, the User tab.
 */
export function serverSettingsCommand(remoteName: string | undefined, query: string = SERVER_SETTINGS_QUERY): SettingsCommand {
  return remoteName !== undefined && remoteName !== ''
    ? { command: 'workbench.action.openRemoteSettings', args: [{ query }] }
    : { command: 'workbench.action.openSettings', args: [{ query }] };
}
