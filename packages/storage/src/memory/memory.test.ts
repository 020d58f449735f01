import { runDriverConformance } from '../conformance.ts';
import { MemoryDriver } from './memory-driver.ts';

runDriverConformance('memory', async () => {
  const make = (driver: MemoryDriver) => ({
    driver,
    writeFile: driver.writeFile.bind(driver),
    readFile: driver.readFile.bind(driver),
    readCommitFile: driver.readCommitFile.bind(driver),
    removeFile: driver.removeFile.bind(driver),
    renamePath: driver.renamePath.bind(driver),
    removePath: driver.removePath.bind(driver),
    cleanup: async () => {},
  });
  return { ...make(new MemoryDriver()), makeSecondHarness: async () => make(new MemoryDriver()) };
});
