// The objects the operator's unit tests start from: a UDP tunnel between nodes a and b that namespace
// "lab" may use, and pseudowires of that namespace.
import { API_VERSION, type L2TPTunnel, type Pseudowire } from '../../lib/api/schemas.js';

export const tunnelObject = (name: string, status?: L2TPTunnel['status']): L2TPTunnel => ({
  apiVersion: API_VERSION,
  kind: 'L2TPTunnel',
  metadata: { name },
  spec: {
    encapsulation: 'UDP',
    udpChecksum: false,
    local: { node: 'a' },
    peer: { node: 'b' },
    allowedNamespaces: ['lab'],
  },
  ...(status ? { status } : {}),
});

export const pseudowireObject = (
  name: string,
  spec: Pseudowire['spec'],
  more: Pick<Pseudowire, 'status'> & { uid?: string } = {},
): Pseudowire => ({
  apiVersion: API_VERSION,
  kind: 'Pseudowire',
  metadata: { name, namespace: 'lab', ...(more.uid ? { uid: more.uid } : {}) },
  spec,
  ...(more.status ? { status: more.status } : {}),
});
