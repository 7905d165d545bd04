import { readSettings } from "../../../src/config/settings";
import { http2ServerLimits } from "../../../src/server/listener-limits";

describe("listener limits", () => {
  it("hands HTTP/2 limits to the listener", () => {
    const o = http2ServerLimits({ ...readSettings({}).limits, maxConcurrentStreams: 7, maxHeaderBytes: 4096 });
    expect(o.settings).toEqual({ maxConcurrentStreams: 7, maxHeaderListSize: 4096 });
  });
});
