// The status bar item (and the search view's status line): renders the server's phase and the
// status it pushes (zl/status). It shows no progress of its own: the server's `$/progress` is
// the one progress item while the index runs.
import * as vscode from 'vscode';
import type { Server } from './server';
import { statusBar } from './statusText';

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscription: vscode.Disposable;

  /** `showText` also gets the text (without its codicon), for the search view's status line. */
  constructor(private readonly server: Server, private readonly showText: (text: string) => void) {
    this.item = vscode.window.createStatusBarItem('zeroLatency.status', vscode.StatusBarAlignment.Left, 0);
    this.item.name = 'Zero-Latency';
    this.item.command = 'zeroLatency.showStatus';
    this.subscription = server.onDidChangePhase(() => this.render());
    this.render();
    this.item.show();
  }

  private render(): void {
    const view = statusBar(this.server.phase);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.showText(view.text.replace(/^\$\([^)]*\)\s*/, '')); // codicons do not render there
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
