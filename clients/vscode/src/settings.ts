// `zeroLatency.*` settings → the server's `initializationOptions`, and the server command line.
// No `vscode` import: the extension passes a lookup over WorkspaceConfiguration.inspect().

/** What WorkspaceConfiguration.inspect() says about one key (only the fields used here). */
export interface InspectedValue {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** Looks a key up relative to the `zeroLatency` section, e.g. `store.path`. */
export type Inspect = (key: string) => InspectedValue | undefined;

type Kind = 'string' | 'integer' | 'boolean' | 'strings';

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

export type InitializationOptions = Record<string, string | number | boolean | string[]>;

/** The user's value for a key: the most specific scope that sets it; defaults do not count. */
export function userValue(inspected: InspectedValue | undefined): unknown {
  if (inspected === undefined) {
    return undefined;
  }
  for (const value of [inspected.workspaceFolderValue, inspected.workspaceValue, inspected.globalValue]) {
    if (value !== undefined && value !== null) {
      return value;
    }
  }
  return undefined;
}

/**
 * initializationOptions with only the keys the user set, so the server's own defaults and its
 * config files (`.zero-latency.toml`) stay in charge of everything else. A value of the wrong
 * type is passed through unchanged: the server's error names the key, which is clearer than a
 * client that silently drops it. Empty strings mean "not set" (the settings UI leaves them).
 */
export function buildInitializationOptions(inspect: Inspect): InitializationOptions {
  const options: InitializationOptions = {};
  for (const { setting, option, kind } of INIT_OPTION_SETTINGS) {
    const value = userValue(inspect(setting));
    if (value === undefined) {
      continue;
    }
    if (kind === 'string' && typeof value === 'string' && value.trim() === '') {
      continue;
    }
    options[option] = value as InitializationOptions[string];
  }
  return options;
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
export const INSTALL_COMMAND = "pip install 'zero-latency[offline]'";

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

/**
 * Where "Open Settings" must go to show `zeroLatency.server.path` / `.args`. They are
 * machine-overridable: in a remote window (code-server, SSH, WSL, containers; `remoteName` set)
 * the User tab does not list them and the Remote (machine) tab does; locally, the User tab.
 */
export function serverSettingsCommand(remoteName: string | undefined): SettingsCommand {
  return remoteName !== undefined && remoteName !== ''
    ? { command: 'workbench.action.openRemoteSettings', args: [{ query: SERVER_SETTINGS_QUERY }] }
    : { command: 'workbench.action.openSettings', args: [{ query: SERVER_SETTINGS_QUERY }] };
}
