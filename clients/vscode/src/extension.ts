// Entry point: wires the modules together, as Microsoft's LSP extension template does. The
// server owns indexing and ranking; the extension forwards requests and shows answers.
//   server.ts     the server's lifecycle (start, restart on settings, stop) and its pushes
//   commands.ts   the commands
//   settings.ts   settings → initializationOptions, the server command, the settings UI
//   status.ts     the status bar item
//   searchView.ts / relatedView.ts   the sidebar's Search and Related views
//   lspExt.ts     the custom methods, typed (wire types generated from protocol/schema.json)
import * as vscode from 'vscode';
import { Commands } from './commands';
import { RelatedView } from './relatedView';
import { SearchViewProvider, VIEW_ID } from './searchView';
import { Server } from './server';
import { StatusItem } from './status';

let server: Server | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const running = new Server(context.globalState);
  server = running;
  const view = new SearchViewProvider(context.extensionUri, {
    sender: () => running.sender(),
    status: () => running.status,
    onStatus: running.onDidChangeStatus,
  });
  context.subscriptions.push(
    running,
    view,
    new StatusItem(running, (text) => view.setStatus(text)),
    new RelatedView(running),
    vscode.window.registerWebviewViewProvider(VIEW_ID, view),
    ...new Commands(running, view).register(),
    vscode.workspace.onDidChangeConfiguration((event) => running.onConfigurationChanged(event)),
    vscode.workspace.onDidChangeWorkspaceFolders(() => running.onFoldersChanged()),
    // Restricted Mode withheld the workspace's restrictedConfigurations (package.json): once the
    // user trusts the folder they apply, and they only reach a new server process.
    vscode.workspace.onDidGrantWorkspaceTrust(() => void running.restart()),
  );
  // Index in the background from the start, so the first search is already fast.
  void running.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
