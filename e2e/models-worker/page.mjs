// Page side of e2e/models-worker.test.mjs: starts the worker and hands its API to the test via window.
import * as Comlink from 'comlink';

window.modelsWorker = Comlink.wrap(new Worker('/worker.js', { type: 'module' }));
window.modelsWorkerReady = true;
