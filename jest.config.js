/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  // End-to-end suites start real servers and child processes; two workers match the machine.
  maxWorkers: 2,
  testTimeout: 30000,
};
