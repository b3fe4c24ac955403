import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netnsHint } from './netns-hint.js';

describe('netnsHint', () => {
  const cri = '/run/containerd/io.containerd.grpc.v1.cri/netns';
  it('names the directory to set when the namespace lies outside the mounted one', () => {
    assert.equal(
      netnsHint(`${cri}/cni-1234`, '/var/run/netns'),
      `set the Helm value cni.netnsDir to ${cri} (the datapath pod mounts /var/run/netns)`,
    );
  });
  it('says the directory is mounted when it is, /var/run and /run being one', () => {
    assert.equal(
      netnsHint('/run/netns/cni-1234', '/var/run/netns'),
      'the datapath pod mounts it (Helm cni.netnsDir /var/run/netns)',
    );
    assert.equal(
      netnsHint('/var/run/netns/sub/cni-1', '/run/netns'),
      'the datapath pod mounts it (Helm cni.netnsDir /run/netns)',
    );
  });
  it('a directory that only starts like the mounted one is not under it', () => {
    assert.match(
      netnsHint('/run/netns2/cni-1', '/run/netns'),
      /^set the Helm value cni\.netnsDir to \/run\/netns2 /,
    );
  });
  it('an agent run on a host: only the directory to set', () => {
    assert.equal(netnsHint('/run/netns/x', undefined), 'set the Helm value cni.netnsDir to /run/netns');
  });
});
