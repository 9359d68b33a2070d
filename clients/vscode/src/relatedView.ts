// The "Related" view in the sidebar: passages in other files related to the paragraph at the
// active editor's cursor (docs/related). It follows the cursor, debounced, only while visible;
// clicking a passage opens it with its best-matching lines selected.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Hit, RelatedResult } from './lspExt';
import { buildRelatedParams, errorCode, errorMessage, isCancelled, related } from './requests';
import { fileLabel, HEADING_SEPARATOR, targetRange, uniqueHits } from './results';
import type { Server } from './server';

export const RELATED_VIEW_ID = 'zeroLatency.related';
/** Moving the cursor line by line asks once it rests. */
const FOLLOW_DEBOUNCE_MS = 400;
const METHOD_NOT_FOUND = -32601;

type RelatedNode = { kind: 'hit'; hit: Hit } | { kind: 'message'; text: string };

const IDLE: RelatedNode = { kind: 'message', text: 'Put the cursor in a document to see related passages.' };

export class RelatedView implements vscode.TreeDataProvider<RelatedNode>, vscode.Disposable {
  private nodes: RelatedNode[] = [IDLE];
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly tree: vscode.TreeView<RelatedNode>;
  private readonly subscriptions: vscode.Disposable[];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: vscode.CancellationTokenSource | undefined;
  /** The document version and line last asked about: the same paragraph is not asked twice. */
  private lastAsked = '';

  constructor(private readonly server: Server) {
    this.tree = vscode.window.createTreeView(RELATED_VIEW_ID, { treeDataProvider: this });
    this.subscriptions = [
      vscode.window.onDidChangeTextEditorSelection((event) => {
        if (event.textEditor === vscode.window.activeTextEditor) {
          this.schedule();
        }
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      vscode.workspace.onDidChangeTextDocument((event) => {
        if (event.document === vscode.window.activeTextEditor?.document) {
          this.schedule();
        }
      }),
      this.tree.onDidChangeVisibility(() => this.schedule()),
    ];
  }

  getTreeItem(node: RelatedNode): vscode.TreeItem {
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
      item.tooltip = node.text; // the sidebar may cut it short
      return item;
    }
    const { hit } = node;
    const target = targetRange(hit);
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
    const file = fileLabel(hit, folders);
    const heading = hit.headingPath.join(HEADING_SEPARATOR);
    const item = new vscode.TreeItem(hit.headingPath.at(-1) ?? path.posix.basename(file), vscode.TreeItemCollapsibleState.None);
    item.description = `${file}:${target.start.line + 1}`;
    item.tooltip = `${file}:${target.start.line + 1}${heading !== '' ? `\n${heading}` : ''}\n\n${hit.snippet}`;
    item.iconPath = new vscode.ThemeIcon('file-text');
    item.command = { command: 'zeroLatency.openLocation', title: 'Open', arguments: [hit.uri, target] };
    return item;
  }

  getChildren(node?: RelatedNode): RelatedNode[] {
    return node === undefined ? this.nodes : [];
  }

  private schedule(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.update();
    }, FOLLOW_DEBOUNCE_MS);
  }

  private async update(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    // Focus in the sidebar leaves the last editor active: its passages stay.
    if (!this.tree.visible || editor === undefined || editor.document.uri.scheme !== 'file') {
      return;
    }
    const { line, character } = editor.selection.active;
    const uri = editor.document.uri.toString();
    const asked = `${uri}#${editor.document.version}#${line}`;
    if (asked === this.lastAsked) {
      return;
    }
    this.lastAsked = asked;
    this.inFlight?.cancel();
    const source = new vscode.CancellationTokenSource();
    this.inFlight = source;
    try {
      const sender = await this.server.sender();
      const result = await related(sender, buildRelatedParams(uri, line, character), source.token);
      if (!source.token.isCancellationRequested) {
        this.show(result, path.basename(editor.document.uri.fsPath));
      }
    } catch (error) {
      if (!isCancelled(error) && !source.token.isCancellationRequested) {
        this.lastAsked = ''; // ask again on the next move
        const text = errorCode(error) === METHOD_NOT_FOUND
          ? 'This zl server has no related passages (docs/related): update it.'
          : errorMessage(error);
        this.setNodes([{ kind: 'message', text }], undefined);
      }
    } finally {
      if (this.inFlight === source) {
        this.inFlight = undefined;
      }
      source.dispose();
    }
  }

  private show(result: RelatedResult, fileName: string): void {
    const { start, end } = result.anchor;
    const lines = start.line === end.line ? `line ${start.line + 1}` : `lines ${start.line + 1}–${end.line + 1}`;
    // Each passage once, even when the answer repeats one (the server's order kept).
    const nodes: RelatedNode[] = uniqueHits(result.hits).map((hit) => ({ kind: 'hit', hit }));
    this.setNodes(nodes.length > 0 ? nodes : [{ kind: 'message', text: 'No related passages in other files.' }], `${fileName}, ${lines}`);
  }

  private setNodes(nodes: RelatedNode[], description: string | undefined): void {
    this.nodes = nodes;
    this.tree.description = description;
    this.changed.fire();
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.inFlight?.cancel();
    for (const subscription of this.subscriptions) {
      subscription.dispose();
    }
    this.tree.dispose();
    this.changed.dispose();
  }
}
