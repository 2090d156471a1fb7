/** The base of the sidebar's views: each shows one notebook's lineage model, re-rendered on demand. */
import { Widget } from '@lumino/widgets';
import { NotebookLineageModel } from './model';

export abstract class LineageView extends Widget {
  protected _model: NotebookLineageModel | null = null;

  constructor(className: string) {
    super();
    this.addClass(className);
  }

  setModel(model: NotebookLineageModel | null): void {
    this._model = model;
    this.render();
  }

  /** Rebuild the view's DOM from the model (notebook content only as text). */
  abstract render(): void;
}
