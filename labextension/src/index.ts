/**
 * nbgov labextension: one lineage model per open notebook (so metadata is written even
 * while the sidebar is closed) and a "Lineage" panel in the right sidebar following
 * the active notebook. Works in JupyterLab 4 and Notebook 7 (both provide
 * INotebookTracker and a right sidebar area).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { NotebookLineageModel } from './model';
import { LineagePanel } from './panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbgov:lineage',
  description: 'Lineage sidebar for the active notebook, and lineage saved into notebook metadata.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, restorer: ILayoutRestorer | null) => {
    const models = new Map<NotebookPanel, NotebookLineageModel>();
    const panel = new LineagePanel();
    app.shell.add(panel, 'right', { rank: 900 });
    if (restorer) {
      restorer.add(panel, 'nbgov-lineage');
    }

    const modelFor = (widget: NotebookPanel): NotebookLineageModel => {
      let model = models.get(widget);
      if (!model) {
        model = new NotebookLineageModel(widget);
        models.set(widget, model);
        widget.disposed.connect(() => {
          models.get(widget)?.dispose();
          models.delete(widget);
          if (panel.model && panel.model.panel === widget) {
            panel.setModel(null);
          }
        });
      }
      return model;
    };

    tracker.widgetAdded.connect((_, widget) => {
      modelFor(widget);
    });
    tracker.forEach(widget => modelFor(widget));
    const follow = () => {
      const current = tracker.currentWidget;
      panel.setModel(current ? modelFor(current) : null);
    };
    tracker.currentChanged.connect(follow);
    follow();
  }
};

export default plugin;
