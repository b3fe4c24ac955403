// Kubernetes Events for what a user should see in `kubectl describe`. Best effort: an Event that
// cannot be written never fails a reconcile.
import type { KObject } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';
import type { KubeApi } from '../../lib/kube/client.js';
import { kubeNow } from './context.js';

export class EventRecorder {
  constructor(
    private readonly client: Pick<KubeApi, 'create'>,
    private readonly log: Logger,
  ) {}

  async record(obj: KObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const ns = obj.metadata.namespace ?? 'default';
    const now = kubeNow();
    await this.client
      .create(`/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.metadata.name}.`, namespace: ns },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
          uid: obj.metadata.uid,
        },
        reason,
        message,
        type,
        source: { component: 'kube-l2tp-operator' },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      })
      .catch((e: unknown) => this.log.debug({ err: e }, 'event not recorded'));
  }
}
