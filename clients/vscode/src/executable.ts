// Finding the server executable before starting it, so a missing install gets a clear message
// with the fix instead of a bare spawn ENOENT. No `vscode` import.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LookupEnv {
  PATH?: string;
  PATHEXT?: string;
  platform: NodeJS.Platform;
  /** Folder that relative paths such as `.venv/bin/zl` are resolved against. */
  cwd?: string;
  isExecutable?: (file: string) => boolean;
}

function defaultIsExecutable(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    fs.accessSync(file, process.platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path `command` runs, or undefined when nothing runnable is there. A bare name is
 * looked up on PATH (with PATHEXT on Windows); a path with a separator is taken as is (relative
 * ones against `cwd`), with `~/` expanded.
 */
export function findExecutable(command: string, env: LookupEnv): string | undefined {
  const isExecutable = env.isExecutable ?? defaultIsExecutable;
  const lib = env.platform === 'win32' ? path.win32 : path.posix;
  const home = process.env.HOME ?? process.env.USERPROFILE;
  let cmd = command;
  if ((cmd === '~' || cmd.startsWith('~/')) && home !== undefined) {
    cmd = lib.join(home, cmd.slice(1));
  }
  const extensions = env.platform === 'win32'
    ? ['', ...(env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').filter((e) => e !== '')]
    : [''];
  const hasSeparator = cmd.includes('/') || (env.platform === 'win32' && cmd.includes('\\'));
  const candidates: string[] = [];
  if (hasSeparator) {
    const full = lib.isAbsolute(cmd) ? cmd : lib.resolve(env.cwd ?? process.cwd(), cmd);
    candidates.push(...extensions.map((ext) => full + ext));
  } else {
    const dirs = (env.PATH ?? '').split(env.platform === 'win32' ? ';' : ':').filter((d) => d !== '');
    for (const dir of dirs) {
      candidates.push(...extensions.map((ext) => lib.join(dir, cmd + ext)));
    }
  }
  return candidates.find((file) => isExecutable(file));
}
