import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IF_OPER, type LinkInfo } from '../../lib/netlink/rtnl.js';
import { underlayProblem } from './underlay.js';

const link = (o: Partial<LinkInfo>): LinkInfo => ({
  index: 2,
  name: 'eth0',
  flags: 0,
  up: true,
  lowerUp: true,
  operstate: IF_OPER.UP,
  ...o,
});
const at = (l: LinkInfo, local = false) => underlayProblem({ local, link: l, nexthop: '10.0.0.2' });

describe('underlay problems, in words for the status', () => {
  it('a usable device, or a peer on this host: nothing to report', () => {
    assert.equal(at(link({})), undefined);
    assert.equal(at(link({ operstate: IF_OPER.UNKNOWN })), undefined, 'devices that report no state');
    assert.equal(at(link({ name: 'lo', up: false }), true), undefined);
  });

  it('down by hand, without carrier, or reported down', () => {
    assert.equal(at(link({ up: false, lowerUp: false })), 'underlay interface eth0 is down');
    assert.equal(
      at(link({ lowerUp: false, operstate: IF_OPER.LOWERLAYERDOWN })),
      'underlay interface eth0 has no carrier',
    );
    assert.equal(at(link({ operstate: IF_OPER.DOWN })), 'underlay interface eth0 is down');
  });
});
