// A static-mode file for the unit tests: two tunnels (UDP with 8-byte cookies, IP encapsulation), a
// named session with no sublayer and an explicit MTU, one with sequencing.
export const EXAMPLE_FILE = `
tunnels:
  - tunnelId: 42
    peerTunnelId: 45
    encap: udp
    local: 10.0.0.1
    remote: 10.0.0.2
    udpSourcePort: 5000
    udpDestinationPort: 5001
    sessions:
      - sessionId: 128
        peerSessionId: 5196755
        cookie: "0102030405060708"
        peerCookie: "1112131415161718"
      - sessionId: 129
        peerSessionId: 5196756
        name: custom0
        l2specType: none
        mtu: 1400
  - tunnelId: 43
    peerTunnelId: 46
    encap: ip
    local: 10.0.0.1
    remote: 10.0.0.3
    sessions:
      - {sessionId: 130, peerSessionId: 1, sendSequence: true, requireSequence: true}
`;
