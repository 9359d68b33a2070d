// Finding the server executable before starting it, so a missing install gets a clear message
// with the fix instead of a bare spawn ENOENT. No `vscode` import.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LookupEnv {
  PATH?: string;
  PATHEXT?: string;
  platform: NodeJS.Platform;
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

function hasSeparator(command: string, platform: NodeJS.Platform): boolean {
  return command.includes('/') || (platform === 'win32' && command.includes('\\'));
}

function isHomePath(command: string, platform: NodeJS.Platform): boolean {
  return command === '~' || command.startsWith('~/') || (platform === 'win32' && command.startsWith('~\\'));
}

/**
 * A path with a separator that is neither absolute nor `~/…` (e.g. `./tools/zl.sh`,
 * `.venv/bin/zl`). It is never run: resolved against a workspace folder, it would let a
 * repository choose the program; resolved against anything else, it would be a guess.
 */
export function isRelativePath(command: string, platform: NodeJS.Platform): boolean {
  const lib = platform === 'win32' ? path.win32 : path.posix;
  return hasSeparator(command, platform) && !isHomePath(command, platform) && !lib.isAbsolute(command);
}

/**
 * The absolute path `command` runs, or undefined when nothing runnable is there. A bare name is
 * looked up on PATH (with PATHEXT on Windows; relative PATH entries are skipped); an absolute
 * path, or one starting with `~/`, is taken as is. A relative path (isRelativePath) is never
 * resolved: undefined.
 */
export function findExecutable(command: string, env: LookupEnv): string | undefined {
  const isExecutable = env.isExecutable ?? defaultIsExecutable;
  const lib = env.platform === 'win32' ? path.win32 : path.posix;
  if (isRelativePath(command, env.platform)) {
    return undefined;
  }
  const home = process.env.HOME ?? process.env.USERPROFILE;
  let cmd = command;
  if (isHomePath(cmd, env.platform)) {
    if (home === undefined || !lib.isAbsolute(home)) {
      return undefined;
    }
    cmd = lib.join(home, cmd.slice(1));
  }
  const extensions = env.platform === 'win32'
    ? ['', ...(env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').filter((e) => e !== '')]
    : [''];
  const candidates: string[] = [];
  if (hasSeparator(cmd, env.platform)) {
    candidates.push(...extensions.map((ext) => cmd + ext));
  } else {
    const dirs = (env.PATH ?? '').split(env.platform === 'win32' ? ';' : ':').filter((d) => d !== '' && lib.isAbsolute(d));
    for (const dir of dirs) {
      candidates.push(...extensions.map((ext) => lib.join(dir, cmd + ext)));
    }
  }
  return candidates.find((file) => isExecutable(file));
}
